"""The captioning part of File > Settings: backend, server, model, key, caption language and
each backend's own options.

:class:`BackendSettingsPanel` edits the open project's settings (stored in the project file
with ``update_settings`` / ``update_backend_options``) or, with no project open, the defaults
for new projects (:class:`~loracap.ui.settings.AppSettings`). What the user changes for one
backend is kept while they look at another, so switching the combo back and forth loses
nothing; :meth:`BackendSettingsPanel.apply` writes it all.

A WD14 model folder is kept in the app settings, not the project: it is a folder of this
computer, and a project travels to other computers.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from loracap.core.backends.base import check_base_url
from loracap.core.backends.registry import BACKENDS, backend_info, resolve_config
from loracap.core.backends.wd14 import (
    DEFAULT_CHARACTER_THRESHOLD,
    DEFAULT_GENERAL_THRESHOLD,
    INSTALL_HINT,
    MODELS,
    TaggerSettings,
)
from loracap.core.errors import LoraCapError
from loracap.core.keys import KEY_SERVICES
from loracap.core.prompts import DEFAULT_LANGUAGE, LANGUAGES, language_label
from loracap.core.records import ProjectSettings
from loracap.core.trusted_servers import trust_server
from loracap.jobs.backend_jobs import BackendModelsJob
from loracap.ui.dialogs import (
    current_key_source,
    describe_key_source,
    message_label,
    plural,
    set_message,
)
from loracap.ui.settings import AppSettings

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)

#: Timeout of a model-list request, in seconds.
MODEL_LIST_TIMEOUT_S = 15.0
#: The WD14 options this panel edits (``TaggerSettings`` fields).
WD14_KEYS = ("general_threshold", "character_threshold", "mcut", "include_rating", "exclude")
#: The options of a vision backend for tagger hints (combined captions).
HINT_KEYS = ("tagger_hints", "tagger_model")
#: The preset combo's last entry: any other server.
CUSTOM_PRESET = "custom"


def onnxruntime_missing() -> bool:
    """True when the optional onnxruntime (the WD14 tagger's engine) is not installed."""
    try:
        return importlib.util.find_spec("onnxruntime") is None
    except (ImportError, ValueError):
        return True


def is_local_url(url: str) -> bool:
    """True for a server on this computer (``localhost``, ``127.0.0.1``, ``::1``)."""
    from urllib.parse import urlsplit

    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return False
    return host in ("localhost", "127.0.0.1", "::1")


class BackendSettingsPanel(QWidget):
    """Backend, server, model, key, language and options (see the module docstring).

    Signals: ``backend_changed(name)`` when another backend is chosen; ``change_key_requested
    (backend)`` when "Change Key…" is pressed (the dialog opens the key dialog and then calls
    :meth:`update_key_status`).
    """

    backend_changed = pyqtSignal(str)
    change_key_requested = pyqtSignal(str)

    def __init__(self, settings: AppSettings, project: Project | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.project = project
        self._model_job: BackendModelsJob | None = None
        self._model_lists: dict[str, list[str]] = {"wd14": list(MODELS)}
        self._choices = self._initial_choices()
        self._current = self._initial_backend()
        if project is not None:
            language = project.settings.language
        else:
            language = settings.default_language
        where = "this project" if project is not None else "new projects"

        # -- backend, server, model, key
        self.backend_combo = QComboBox()
        self.backend_combo.setAccessibleName("Captioning backend")
        for name, info in BACKENDS.items():
            self.backend_combo.addItem(info.label, name)
        self.backend_combo.setToolTip(f"Who writes the captions of {where}: an online service, "
                                      "a server (also one on this computer) or the local WD14 "
                                      "tagger.")
        from loracap.core.backends.openai_compat import OPENAI_PRESETS

        self._presets = {preset.name: preset for preset in OPENAI_PRESETS}
        self.preset_combo = QComboBox()
        self.preset_combo.setAccessibleName("Server")
        for preset in OPENAI_PRESETS:
            self.preset_combo.addItem(preset.label, preset.name)
        self.preset_combo.addItem("Custom", CUSTOM_PRESET)
        self.preset_combo.setToolTip("Choose a known server to fill in its usual address.")
        self.base_url_edit = QLineEdit()
        self.base_url_edit.setAccessibleName("Server URL")
        self.base_url_edit.setClearButtonEnabled(True)
        self.url_message = message_label("Server URL problem")

        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_combo.setAccessibleName("Model")
        self.model_combo.setMinimumContentsLength(18)
        self.model_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.refresh_button = QPushButton("&Refresh list")
        self.refresh_button.setAccessibleName("Refresh the model list")
        self.model_message = message_label("Model list status")

        # One line (a wrapped label in a form row is cut off when the row is laid out for
        # one line): the page is as wide as the longest key sentence.
        self.key_label = QLabel()
        self.key_label.setAccessibleName("API key status")
        self.change_key_button = QPushButton("Chan&ge Key…")
        self.change_key_button.setAccessibleName("Change the API key")

        self.language_combo = QComboBox()
        self.language_combo.setAccessibleName("Caption language")
        for code in LANGUAGES:
            self.language_combo.addItem(language_label(code), code)
        index = self.language_combo.findData(language)
        self.language_combo.setCurrentIndex(max(0, index))
        self.language_combo.setToolTip(
            "The language the captions are written in. Trigger words and tags of the WD14 "
            "tagger stay as they are.")

        # -- WD14
        self.wd14_group = QGroupBox("WD14 tagger")
        self.general_spin = self._threshold_spin(
            "General tag threshold", "A tag is kept when its score is above this (0–1; the "
            f"models' suggestion is {DEFAULT_GENERAL_THRESHOLD:g}). Lower: more tags.")
        self.character_spin = self._threshold_spin(
            "Character threshold", "A character is named when its score is above this (0–1; "
            f"suggested {DEFAULT_CHARACTER_THRESHOLD:g}).")
        self.mcut_check = QCheckBox("Choose the thresholds per image (MCut)")
        self.mcut_check.setToolTip("Keeps the tags above the largest gap between the scores "
                                   "of each image; the thresholds above are then not used.")
        self.rating_check = QCheckBox("Begin with the rating (general, sensitive, …)")
        self.exclude_edit = QLineEdit()
        self.exclude_edit.setAccessibleName("Tags never written")
        self.exclude_edit.setPlaceholderText("e.g. simple background, white background")
        self.exclude_edit.setToolTip("Tags the tagger never writes, separated by commas "
                                     "(case and underscores do not matter).")
        self.model_dir_edit = QLineEdit()
        self.model_dir_edit.setAccessibleName("WD14 model folder")
        self.model_dir_edit.setPlaceholderText("None: the model is downloaded once")
        self.model_dir_edit.setClearButtonEnabled(True)
        self.model_dir_edit.setToolTip(
            "A folder holding model.onnx and selected_tags.csv of a WD14 tagger, used instead "
            "of downloading one. Kept on this computer, not in the project.")
        self.model_dir_button = QPushButton("&Browse…")
        self.model_dir_button.setAccessibleName("Choose the WD14 model folder")
        wd14_form = QFormLayout(self.wd14_group)
        wd14_form.addRow("&General tags above:", self.general_spin)
        wd14_form.addRow("C&haracters above:", self.character_spin)
        wd14_form.addRow("", self.mcut_check)
        wd14_form.addRow("", self.rating_check)
        wd14_form.addRow("&Never write:", self.exclude_edit)
        dir_row = QHBoxLayout()
        dir_row.addWidget(self.model_dir_edit, 1)
        dir_row.addWidget(self.model_dir_button)
        dir_label = QLabel("Model &folder:")
        dir_label.setBuddy(self.model_dir_edit)
        wd14_form.addRow(dir_label, dir_row)

        # -- tagger hints (combined captions)
        self.hints_group = QGroupBox("Tagger hints")
        self.hints_check = QCheckBox("Tag with WD14 first and give the tags as hints")
        self.hints_check.setToolTip(
            "The local WD14 tagger tags each image first; the model is told those tags (it "
            "may find them wrong). Helps a small model notice details.")
        self.hints_model_combo = QComboBox()
        self.hints_model_combo.setAccessibleName("WD14 model for hints")
        self.hints_model_combo.addItems(MODELS)
        hints_form = QFormLayout(self.hints_group)
        hints_form.addRow(self.hints_check)
        hints_form.addRow("WD14 mo&del:", self.hints_model_combo)
        self.wd14_note = message_label("WD14 tagger not installed")

        # -- layout
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        backend_label = QLabel("&Backend:")
        backend_label.setBuddy(self.backend_combo)
        form.addRow(backend_label, self.backend_combo)
        self.preset_label = QLabel("Ser&ver:")
        self.preset_label.setBuddy(self.preset_combo)
        form.addRow(self.preset_label, self.preset_combo)
        self.url_label = QLabel("Server &URL:")
        self.url_label.setBuddy(self.base_url_edit)
        form.addRow(self.url_label, self.base_url_edit)
        form.addRow("", self.url_message)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_button)
        model_label = QLabel("&Model:" if project is not None else "Default &model:")
        model_label.setBuddy(self.model_combo)
        form.addRow(model_label, model_row)
        form.addRow("", self.model_message)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_label, 1)
        key_row.addWidget(self.change_key_button)
        self.key_title = QLabel("API key:")
        form.addRow(self.key_title, key_row)
        language_label_widget = QLabel("Caption &language:")
        language_label_widget.setBuddy(self.language_combo)
        form.addRow(language_label_widget, self.language_combo)
        self._form = form
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.wd14_note)
        layout.addWidget(self.wd14_group)
        layout.addWidget(self.hints_group)
        layout.addStretch(1)

        self.backend_combo.currentIndexChanged.connect(self._on_backend_index)
        self.preset_combo.activated.connect(self._on_preset)
        self.base_url_edit.textChanged.connect(self._on_url_text)
        self.refresh_button.clicked.connect(self.refresh_models)
        self.change_key_button.clicked.connect(
            lambda: self.change_key_requested.emit(self._current))
        self.mcut_check.toggled.connect(self._update_enabled)
        self.hints_check.toggled.connect(self._update_enabled)
        self.model_dir_button.clicked.connect(lambda: self.choose_model_dir())
        self.model_dir_edit.textChanged.connect(self._update_enabled)
        model_dir = settings.wd14_model_dir
        self.model_dir_edit.setText(str(model_dir) if model_dir is not None else "")

        self.backend_combo.blockSignals(True)
        self.backend_combo.setCurrentIndex(self.backend_combo.findData(self._current))
        self.backend_combo.blockSignals(False)
        self._show(self._current)

    # ------------------------------------------------------------------ state

    def _initial_backend(self) -> str:
        name = (self.project.settings.backend if self.project is not None
                else self.settings.default_backend)
        return name if name in BACKENDS else "gemini"

    def _initial_choices(self) -> dict[str, dict[str, Any]]:
        """What each backend starts with: the project's (or the new-project defaults') own
        backend its model and URL, the others their defaults; everyone their options."""
        if self.project is not None:
            settings = self.project.settings
            own, own_model, own_url = settings.backend, settings.model, settings.base_url
            stored = {name: dict(settings.options_for(name)) for name in BACKENDS}
        else:
            own = self.settings.default_backend
            own_model, own_url = self.settings.default_model, self.settings.default_base_url
            defaults = self.settings.default_backend_options
            stored = {name: dict(defaults.get(name, {})) for name in BACKENDS}
        choices: dict[str, dict[str, Any]] = {}
        for name, info in BACKENDS.items():
            mine = name == own
            choices[name] = {
                "model": own_model if mine else (str(stored[name].get("model") or "")
                                                 or info.default_model),
                "base_url": own_url if mine else "",
                "options": stored[name],
                "stored": dict(stored[name]),
            }
        return choices

    @property
    def backend(self) -> str:
        """The backend chosen."""
        return self._current

    @property
    def model(self) -> str:
        """The model as entered (without a ``models/`` prefix)."""
        return self.model_combo.currentText().strip().removeprefix("models/")

    @property
    def base_url(self) -> str:
        """The server URL as entered (``""``: the backend's default)."""
        return self.base_url_edit.text().strip()

    @property
    def language(self) -> str:
        """The caption language's code."""
        return str(self.language_combo.currentData() or DEFAULT_LANGUAGE)

    @property
    def model_job(self) -> BackendModelsJob | None:
        """The running (or last) model-list request."""
        return self._model_job

    def options(self, backend: str) -> dict[str, Any]:
        """The options of ``backend`` as they would be saved (the shown backend's read from
        the fields)."""
        if backend == self._current:
            self._store_current()
        return dict(self._choices[backend]["options"])

    def _store_current(self) -> None:
        choice = self._choices[self._current]
        choice["model"] = self.model
        choice["base_url"] = self.base_url
        options = choice["options"]
        if self._current == "wd14":
            options.update({
                "general_threshold": round(self.general_spin.value(), 2),
                "character_threshold": round(self.character_spin.value(), 2),
                "mcut": self.mcut_check.isChecked(),
                "include_rating": self.rating_check.isChecked(),
                "exclude": [t.strip() for t in self.exclude_edit.text().split(",") if t.strip()],
            })
        elif backend_info(self._current).vision:
            if self.hints_check.isChecked() or "tagger_hints" in options:
                options["tagger_hints"] = self.hints_check.isChecked()
                options["tagger_model"] = self.hints_model_combo.currentText()

    def _show(self, name: str) -> None:
        """Fill the fields with ``name``'s choices."""
        info = backend_info(name)
        choice = self._choices[name]
        is_openai, is_wd14 = name == "openai", name == "wd14"
        url = choice["base_url"]
        show_url = is_openai or bool(url)
        self._form.setRowVisible(self.preset_combo, is_openai)
        self._form.setRowVisible(self.base_url_edit, show_url)
        if not show_url:
            set_message(self.url_message, "")
        self.base_url_edit.blockSignals(True)
        self.base_url_edit.setText(url)
        self.base_url_edit.blockSignals(False)
        self.base_url_edit.setPlaceholderText(
            "https://api.openai.com/v1 (OpenAI)" if is_openai else "the service's own address")
        self._sync_preset()
        self._check_url()

        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        names = self._model_lists.get(name, [])
        self.model_combo.addItems(names)
        model = choice["model"]
        if model and model not in names:
            self.model_combo.insertItem(0, model)
        self.model_combo.setCurrentText(model)
        self.model_combo.blockSignals(False)
        self.model_combo.lineEdit().setPlaceholderText(  # type: ignore[union-attr]
            "the server's first vision model" if is_openai else info.default_model)
        self.model_combo.setToolTip(self._model_tip(name))
        self.refresh_button.setVisible(not is_wd14)
        self.refresh_button.setToolTip(f"Ask {info.label} which models it offers")
        set_message(self.model_message, "")

        # Tags are not translated: the language is the vision models' (and stays stored).
        self._form.setRowVisible(self.language_combo, not is_wd14)
        self.wd14_group.setVisible(is_wd14)
        self.hints_group.setVisible(info.vision)
        options = choice["options"]
        if is_wd14:
            try:
                tagger = TaggerSettings.from_options(options)
            except LoraCapError:
                tagger = TaggerSettings()
            self.general_spin.setValue(tagger.general_threshold)
            self.character_spin.setValue(tagger.character_threshold)
            self.mcut_check.setChecked(tagger.mcut)
            self.rating_check.setChecked(tagger.include_rating)
            self.exclude_edit.setText(", ".join(tagger.exclude))
        else:
            self.hints_check.setChecked(bool(options.get("tagger_hints")))
            hint_model = str(options.get("tagger_model") or MODELS[0])
            if self.hints_model_combo.findText(hint_model) < 0:
                self.hints_model_combo.addItem(hint_model)
            self.hints_model_combo.setCurrentText(hint_model)
        self.update_key_status()
        self._update_enabled()

    def _model_tip(self, name: str) -> str:
        where = "Stored in this project." if self.project is not None else \
            "Used for new projects."
        if name == "wd14":
            return f"The WD14 tagger; downloaded once (a few hundred MB). {where}"
        if name == "openai":
            return ("The model name as the server knows it, e.g. gpt-4o-mini or qwen2.5vl:7b; "
                    f"empty: the server's first model that can see images. {where}")
        return f"The model that writes the captions, e.g. {backend_info(name).default_model}. " \
            + where

    @staticmethod
    def _threshold_spin(name: str, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, 1.0)
        spin.setDecimals(2)
        spin.setSingleStep(0.05)
        spin.setAccessibleName(name)
        spin.setToolTip(tip)
        spin.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        return spin

    # ------------------------------------------------------------------ slots

    @pyqtSlot(int)
    def _on_backend_index(self, index: int) -> None:
        name = str(self.backend_combo.itemData(index))
        if name == self._current:
            return
        self._store_current()
        self._current = name
        self._show(name)
        self.backend_changed.emit(name)

    def set_backend(self, name: str) -> None:
        """Show ``name`` as if chosen in the combo."""
        self.backend_combo.setCurrentIndex(self.backend_combo.findData(name))

    @pyqtSlot(int)
    def _on_preset(self, index: int) -> None:
        name = str(self.preset_combo.itemData(index))
        preset = self._presets.get(name)
        if preset is None:  # Custom: the user types the address
            self.base_url_edit.setFocus()
            self.base_url_edit.selectAll()
            return
        self.base_url_edit.setText("" if name == "openai" else preset.base_url)

    def set_preset(self, name: str) -> None:
        """Choose the server preset ``name`` (``"ollama"``, …, ``"custom"``) as a user would."""
        index = self.preset_combo.findData(name)
        self.preset_combo.setCurrentIndex(index)
        self._on_preset(index)

    @pyqtSlot(str)
    def _on_url_text(self, _text: str) -> None:
        self._sync_preset()
        self._check_url()
        self.update_key_status()

    def _sync_preset(self) -> None:
        from loracap.core.backends.openai_compat import preset_for_url

        url = self.base_url
        preset = self._presets["openai"] if not url else preset_for_url(url)
        name = preset.name if preset is not None else CUSTOM_PRESET
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(name))

    def _check_url(self) -> bool:
        """Check the URL field; shows what is wrong under it. True when it can be used."""
        try:
            check_base_url(self.base_url, self._current)
        except LoraCapError as exc:
            set_message(self.url_message, str(exc), error=True)
            return False
        set_message(self.url_message, "")
        return True

    @pyqtSlot()
    def update_key_status(self) -> None:
        """Say whether the shown backend has a key (or needs none)."""
        name = self._current
        needs_key = name in KEY_SERVICES
        self.key_title.setText("API key:")
        self.change_key_button.setVisible(needs_key)
        if not needs_key:
            self.key_label.setText("Not needed: the tagger runs on this computer.")
            return
        source = current_key_source(name)
        if name == "openai" and self.base_url and is_local_url(self.base_url):
            self.key_label.setText("None needed for a server on this computer."
                                   if source is None else describe_key_source(source))
            return
        if name == "openai" and source is None:
            self.key_label.setText("No API key is set yet (a local server needs none).")
            return
        self.key_label.setText(describe_key_source(source))

    @pyqtSlot()
    def _update_enabled(self) -> None:
        mcut = self.mcut_check.isChecked()
        self.general_spin.setEnabled(not mcut)
        self.character_spin.setEnabled(not mcut)
        self.hints_model_combo.setEnabled(self.hints_check.isChecked())
        missing = onnxruntime_missing()
        uses_tagger = self._current == "wd14" or self.hints_check.isChecked()
        set_message(self.wd14_note, f"{INSTALL_HINT}." if missing and uses_tagger else "",
                    error=True)

    def choose_model_dir(self, folder: Path | None = None) -> None:
        """Pick the WD14 model folder (asks unless ``folder`` is given)."""
        if folder is None:
            name = QFileDialog.getExistingDirectory(self, "WD14 Model Folder",
                                                    self.model_dir_edit.text() or str(Path.home()))
            if not name:
                return
            folder = Path(name)
        self.model_dir_edit.setText(str(folder))

    # ------------------------------------------------------------------ models

    def _settings_for(self, name: str) -> ProjectSettings:
        choice = self._choices[name]
        return ProjectSettings(name="", trigger="x", profile="space", custom_prompt="",
                               prefix_template="", model=choice["model"], backend=name,
                               base_url=choice["base_url"],
                               backend_options={name: dict(choice["options"])})

    @pyqtSlot()
    def refresh_models(self) -> None:
        """Ask the shown backend for its models (in the background; needs its key)."""
        if self._model_job is not None and self._model_job.is_running:
            return
        self._store_current()
        if not self._check_url():
            return
        name = self._current
        try:
            config = resolve_config(self._settings_for(name), timeout_s=MODEL_LIST_TIMEOUT_S)
        except LoraCapError as exc:
            set_message(self.model_message, str(exc), error=True)
            return
        job = BackendModelsJob(config, self)
        job.finished.connect(lambda names: self._on_models(name, names))
        job.failed.connect(lambda message: self._on_models_failed(name, message))
        self._model_job = job
        self.refresh_button.setEnabled(False)
        set_message(self.model_message, f"Asking {backend_info(name).label} for its models…")
        job.start()

    def _on_models(self, name: str, names: list[str]) -> None:
        self.refresh_button.setEnabled(True)
        self._model_lists[name] = list(names)
        if name != self._current:
            return
        current = self.model_combo.currentText()
        self.model_combo.clear()
        self.model_combo.addItems(names)
        self.model_combo.setCurrentText(current)
        if names:
            set_message(self.model_message,
                        f"{plural(len(names), 'model')} can write captions.")
        else:
            set_message(self.model_message,
                        f"{backend_info(name).label} returned no models that can write "
                        "captions.", error=True)

    def _on_models_failed(self, name: str, message: str) -> None:
        self.refresh_button.setEnabled(True)
        if name == self._current:
            set_message(self.model_message, message, error=True)

    # ------------------------------------------------------------------ saving

    def problem(self) -> str:
        """What stops the choices from being saved (``""`` when nothing)."""
        if not self._check_url():
            return self.url_message.text()
        if not self.model and self._current not in ("openai",):
            return f"Enter a model name, e.g. {backend_info(self._current).default_model}."
        folder = self.model_dir_edit.text().strip()
        if folder and not Path(folder).expanduser().is_dir():
            return f'The WD14 model folder "{folder}" does not exist.'
        return ""

    def _keep_models(self) -> None:
        """Each other backend's model choice goes into its options, so switching the project's
        backend and back finds it again (:func:`~loracap.core.backends.registry.resolve_config`
        reads it for a backend that is not the project's)."""
        for name, values in self._choices.items():
            if name == self._current:
                continue  # the chosen backend's model is the project's own setting
            model = str(values["model"] or "").strip()
            stored = values["options"].get("model")
            if not model or stored == model or (stored is None
                                                and model == BACKENDS[name].default_model):
                continue  # nothing chosen, or nothing new to remember
            values["options"]["model"] = model

    def apply(self) -> None:
        """Save the choices: in the project, or as the defaults for new projects. Raises the
        core's :class:`LoraCapError` for a value it refuses (nothing more is written then)."""
        self._store_current()
        name = self._current
        choice = self._choices[name]
        base_url = check_base_url(choice["base_url"], name)
        folder = self.model_dir_edit.text().strip()
        self.settings.wd14_model_dir = Path(folder).expanduser() if folder else None
        if self.project is None:
            self.settings.default_backend = name
            self.settings.default_model = choice["model"]
            self.settings.default_base_url = base_url
            trust_server(name, base_url)  # the user's own default for new projects
            self.settings.default_language = self.language
            self._keep_models()
            self.settings.default_backend_options = {
                backend: dict(values["options"]) for backend, values in self._choices.items()
                if values["options"]}
            return
        current = self.project.settings
        changes: dict[str, Any] = {}
        for key, value in (("backend", name), ("model", choice["model"]),
                           ("base_url", base_url), ("language", self.language)):
            if getattr(current, key) != value:
                changes[key] = value
        if changes:
            self.project.update_settings(**changes)
        if "base_url" in changes:
            # A server the user typed or picked here is theirs: their key may go there.
            trust_server(name, base_url)
        self._keep_models()
        for backend, values in self._choices.items():
            changed = {key: value for key, value in values["options"].items()
                       if values["stored"].get(key, object()) != value}
            if changed:
                self.project.update_backend_options(backend, **changed)
                values["stored"].update(changed)
