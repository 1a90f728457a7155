"""The API key dialog and File > Settings… (key, model, speed, upload size, tags).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, pyqtSlot
from PyQt6.QtGui import QShowEvent
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from loracap.core.errors import InputError, LoraCapError
from loracap.core.keys import (
    AI_STUDIO_URL,
    KEY_SERVICES,
    KEYCHAIN_SOURCE,
    check_api_key,
    keychain_available,
    store_api_key,
)
from loracap.jobs.backend_jobs import BackendModelsJob
from loracap.ui.backend_settings import BackendSettingsPanel
from loracap.ui.dialogs import (
    current_key_source,
    describe_key_source,
    message_label,
    plural,
    set_message,
    start_size,
)
from loracap.ui.people_settings import MULTI_PERSON_PROFILES, PeoplePage
from loracap.ui.settings import AppSettings
from loracap.ui.widgets import ElidedLabel

if TYPE_CHECKING:  # not at run time: SQLAlchemy and Pillow load with the first project or scan
    from loracap.core.project import Project


log = logging.getLogger(__name__)

#: Environment variable that a session-only Gemini API key is put in (read by
#: ``find_api_key``); other backends use the last variable of their key service.
SESSION_KEY_VARIABLE = "GEMINI_API_KEY"


def session_key_variable(backend: str) -> str:
    """The environment variable a session-only key of ``backend`` is put in."""
    return SESSION_KEY_VARIABLE if backend == "gemini" else KEY_SERVICES[backend].env[-1]

#: Starting width of the API key and settings dialogs, in logical pixels.
DIALOG_WIDTH = 480


# ---------------------------------------------------------------------------------- API key


def _intro(backend: str, storage: str) -> str:
    """The API key dialog's first paragraph for ``backend`` (where keys are made)."""
    service = KEY_SERVICES[backend]
    if backend == "gemini":
        return ("Captions are written by Google Gemini, an online AI service. "
                "To use it you need an API key: sign in to Google AI Studio and choose "
                f'<a href="{AI_STUDIO_URL}">Create API key</a>. '
                f"Paste the key below; {storage}")
    if backend == "anthropic":
        return ("Captions are written by Anthropic Claude, an online AI service. To use it "
                "you need an API key: create one in the "
                '<a href="https://console.anthropic.com/settings/keys">Claude Console</a>. '
                f"Paste the key below; {storage}")
    return ("Captions are written by an OpenAI-compatible server. OpenAI and OpenRouter need "
            "an API key (OpenAI's are made at "
            '<a href="https://platform.openai.com/api-keys">platform.openai.com</a>); a server '
            "on your own computer (Ollama, LM Studio, vLLM) needs none. "
            f"Paste the key below; {storage} It is used for {service.label}s only.")


class ApiKeyDialog(QDialog):
    """Asks for a backend's API key (``backend``: ``gemini``, ``openai`` or ``anthropic``,
    :data:`loracap.core.keys.KEY_SERVICES`) and saves it in the OS keychain.

    When the keychain is not available the key can be used for this session only: it is put
    in the process's environment variable for that backend (``GEMINI_API_KEY``,
    ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) and forgotten on quit. The key is never written
    to a file. After acceptance :attr:`saved_to` is ``"keychain"`` or ``"session"``.
    """

    def __init__(self, parent: QWidget | None = None, backend: str = "gemini") -> None:
        super().__init__(parent)
        self.backend = backend
        self.service = KEY_SERVICES[backend]
        self.setWindowTitle(f"{self.service.label} API Key")
        self.saved_to: str | None = None
        self._keychain = keychain_available()

        storage = (
            "it is kept in your system's keychain, never in a file."
            if self._keychain else "it is never written to a file."
        )
        self.intro_label = QLabel(_intro(backend, storage))
        self.intro_label.setWordWrap(True)
        self.intro_label.setTextFormat(Qt.TextFormat.RichText)
        self.intro_label.setOpenExternalLinks(True)
        self.intro_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.intro_label.setAccessibleName("About the API key")

        source = current_key_source(backend)
        status = describe_key_source(source) if source is not None else ""
        if source is not None and source != KEYCHAIN_SOURCE and self._keychain:
            status += " It takes precedence over a key saved here."
        self.source_label = message_label("Key in use")
        set_message(self.source_label, status)

        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("Paste your API key")
        self.key_edit.setAccessibleName("API key")
        self.key_edit.setToolTip(f"The key from {self.service.where}")
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
            set_message(self.error_label, f"Paste the key from {self.service.where} first.",
                         error=True)
            return
        if self._keychain:
            try:
                store_api_key(key, self.backend)
            except LoraCapError as exc:
                set_message(self.error_label, str(exc), error=True)
                return
            self.saved_to = "keychain"
        else:
            try:
                key = check_api_key(key, None, self.backend)
            except LoraCapError as exc:
                set_message(self.error_label, str(exc), error=True)
                return
            variable = session_key_variable(self.backend)
            os.environ[variable] = key
            self.saved_to = "session"
            log.info("Using the %s API key for this session only (%s)", self.service.label,
                     variable)
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
    """File > Settings: the captioning backend and its options, the speed, the tags.

    Tab "Captioning" (:class:`~loracap.ui.backend_settings.BackendSettingsPanel`): backend,
    server, model, key, caption language and the backend's own options -- the open project's
    (stored in the project file) or, with no project open, the defaults for new projects.
    Tab "Speed": requests at once and per minute ("Automatic": each backend's own pace, a
    number: the same for every backend) and the upload size. Tab "Tags": the tag list for
    autocomplete and the project's tag separator. On OK everything is written; a value the
    core refuses keeps the dialog open with the reason.
    """

    def __init__(self, settings: AppSettings, project: Project | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.project = project
        self._key_dialog: ApiKeyDialog | None = None

        # -- captioning
        self.backend_panel = BackendSettingsPanel(settings, project)
        panel = self.backend_panel
        # The names the window and the tests use.
        self.backend_combo = panel.backend_combo
        self.model_combo = panel.model_combo
        self.refresh_button = panel.refresh_button
        self.model_message = panel.model_message
        self.key_label = panel.key_label
        self.change_key_button = panel.change_key_button
        self.language_combo = panel.language_combo

        # -- speed
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(0, 16)
        self.workers_spin.setSpecialValueText("Automatic")
        self.workers_spin.setValue(settings.workers)
        self.workers_spin.setAccessibleName("Requests at once")
        self.workers_spin.setToolTip("How many images are sent at the same time.")
        self.rpm_spin = QSpinBox()
        self.rpm_spin.setRange(0, 1000)
        self.rpm_spin.setSpecialValueText("Automatic")
        self.rpm_spin.setValue(settings.rpm)
        self.rpm_spin.setAccessibleName("Requests per minute")
        self.rpm_spin.setToolTip("At most this many requests start per minute.")
        self.pace_note = QLabel()
        self.pace_note.setWordWrap(True)
        self.pace_note.setAccessibleName("How the speed is chosen")
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

        # A scroll area: the WD14 options make the page tall, and a 13-inch laptop at 200 %
        # has 768 logical pixels.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.addWidget(panel)
        scroll.setWidget(page)
        self._scroll = scroll

        speed = QWidget()
        speed_form = QFormLayout(speed)
        for text, spin in (("Requests at &once:", self.workers_spin),
                           ("Requests per mi&nute:", self.rpm_spin)):
            label = QLabel(text)
            label.setBuddy(spin)
            speed_form.addRow(label, spin)
        speed_form.addRow(self.pace_note)
        side_label = QLabel("Upload &long side:")
        side_label.setBuddy(self.max_side_spin)
        speed_form.addRow(side_label, self.max_side_spin)

        tags = QWidget()
        tags_form = QFormLayout(tags)
        tags_row = QHBoxLayout()
        tags_row.addWidget(self.tag_list_label, 1)
        tags_row.addWidget(self.load_tags_button)
        tags_row.addWidget(self.clear_tags_button)
        tags_form.addRow("Tag list:", tags_row)
        tags_form.addRow("Tag &separator:", self.separator_edit)

        self.tabs = QTabWidget()
        self.tabs.addTab(scroll, "&Captioning")
        self.tabs.addTab(speed, "S&peed")
        self.tabs.addTab(tags, "&Tags")
        self.people_page: PeoplePage | None = None
        if project is not None and project.settings.profile in MULTI_PERSON_PROFILES:
            self.people_page = PeoplePage(project)
            self.tabs.addTab(self.people_page, "P&eople")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        panel.change_key_requested.connect(self.change_key)
        panel.backend_changed.connect(lambda _name: self._update())
        panel.backend_changed.connect(lambda _name: self._update_pace_note())
        panel.backend_changed.connect(lambda _name: self._grow_to_page())
        panel.base_url_edit.textChanged.connect(lambda _text: self._update_pace_note())
        self.model_combo.editTextChanged.connect(self._update)
        self.load_tags_button.clicked.connect(lambda: self.load_tag_list())
        self.clear_tags_button.clicked.connect(self.clear_tag_list)
        self._update_tag_list()
        self._update_pace_note()
        self._update()
        self._size_to_screen()

    def _size_to_screen(self) -> None:
        """As large as the captioning page needs without scrolling, but never taller than the
        screen's free room (then the page scrolls)."""
        page = self._scroll.widget()
        assert page is not None
        bar = self._scroll.verticalScrollBar()
        extra = bar.sizeHint().width() if bar is not None else 16
        self._scroll.setMinimumWidth(page.sizeHint().width() + extra)
        start_size(self, DIALOG_WIDTH)
        self._grow_to_page()

    def showEvent(self, event: QShowEvent | None) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        self._grow_to_page()  # the page's size is known once it is shown

    def _grow_to_page(self) -> None:
        """Taller when the captioning page needs it (the WD14 options), within the screen."""
        page = self._scroll.widget()
        assert page is not None
        layout = page.layout()
        if layout is not None:
            layout.activate()
        screen = self.screen()
        room = screen.availableGeometry().height() - 80 if screen is not None else 700
        chrome = self.height() - self._scroll.viewport().height() \
            if self.isVisible() else self.sizeHint().height() - self._scroll.sizeHint().height()
        wanted = min(room, chrome + page.sizeHint().height() + 4)
        if wanted > self.height():
            self.resize(self.width(), wanted)

    @property
    def model(self) -> str:
        """The model name as entered (without a ``models/`` prefix)."""
        return self.backend_panel.model

    @property
    def model_job(self) -> BackendModelsJob | None:
        """The running (or last) model-list request."""
        return self.backend_panel.model_job

    @pyqtSlot()
    def change_key(self, backend: str | None = None) -> None:
        """Open the API key dialog of the backend shown (window-modal; the status updates
        when it closes)."""
        dialog = ApiKeyDialog(self, backend or self.backend_panel.backend)
        dialog.finished.connect(self.backend_panel.update_key_status)
        self._key_dialog = dialog
        dialog.open()

    @pyqtSlot()
    def refresh_models(self) -> None:
        """Ask the backend shown for its models (needs its key)."""
        self.backend_panel.refresh_models()

    def accept(self) -> None:
        """Write the settings (the project's or the new-project defaults); stay open if the
        core refuses a value."""
        problem = self.backend_panel.problem()
        if problem:
            set_message(self.error_label, problem, error=True)
            self.tabs.setCurrentIndex(0)
            return
        try:
            self.backend_panel.apply()
            if self.project is not None:
                separator = self.separator_edit.text()
                if self.project.settings.tag_separator != separator:
                    self.project.update_settings(tag_separator=separator)
            if self.people_page is not None:
                self.people_page.apply()
        except LoraCapError as exc:
            set_message(self.error_label, str(exc), error=True)
            if self.people_page is not None and isinstance(exc, InputError):
                self.tabs.setCurrentWidget(self.people_page)
            return
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

    def _update_pace_note(self) -> None:
        from loracap.core.backends.base import BackendConfig
        from loracap.core.backends.registry import backend_info, batch_defaults

        panel = self.backend_panel
        workers, rpm = batch_defaults(BackendConfig(backend=panel.backend, model=panel.model,
                                                    base_url=panel.base_url))
        limit = f"{rpm} per minute" if rpm else "no limit per minute"
        self.pace_note.setText(
            "Automatic uses each backend's own pace; for "
            f"{backend_info(panel.backend).label} that is {workers} at once and {limit}. "
            "A number applies to every backend.")

    @pyqtSlot()
    def _update(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        if ok is not None:
            needs_model = self.backend_panel.backend != "openai"
            enabled = bool(self.model) or not needs_model
            ok.setEnabled(enabled)
            ok.setToolTip("" if enabled else "Enter a model name")
