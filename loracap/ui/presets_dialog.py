"""Captions > Prompt Presets…: the built-in prompts, the user's own (for every project) and the
project's, with a preview of the edited prompt on the current image.

Built-in presets are read-only (duplicate one to change it). The user's presets are saved in
``presets.json`` of the user's config folder (:func:`loracap.core.presets.save_user_presets`),
the project's in the project file (``prompt_presets``), each as soon as a change is done:
when another preset is chosen, a button is pressed or the dialog closes. A preset's name or
prompt that breaks the rules (:mod:`loracap.core.presets`) is said under the editor and not
saved.

"Preview" sends one request with the prompt as it is in the editor (saved or not) through the
project's backend (or the one Captions > Caption With chose) in a background job, and shows
the cleaned caption and the tokens it cost; nothing is stored in the project.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QSize, Qt, pyqtSlot
from PyQt6.QtGui import QCloseEvent, QFont
from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from loracap.core.backends.base import BackendConfig, Captioner
from loracap.core.errors import LoraCapError
from loracap.core.presets import (
    BUILTIN_PRESETS,
    MAX_NAME_LENGTH,
    PromptPreset,
    load_user_presets,
    presets_from_json,
    presets_to_json,
    save_user_presets,
    user_preset,
)
from loracap.core.pricing import format_cost, load_prices
from loracap.core.prompts import Instructions, Profile, build_instructions
from loracap.jobs.backend_jobs import Preview, PreviewJob
from loracap.ui.dialogs import message_label, set_message, start_size

if TYPE_CHECKING:
    from loracap.core.project import Project

log = logging.getLogger(__name__)

BUILTIN, USER, PROJECT = "builtin", "user", "project"
SCOPE_NOTES = {
    BUILTIN: "Built-in, read-only: Duplicate it to make your own version.",
    USER: "Yours: offered in every project (saved on this computer).",
    PROJECT: "This project's: saved in the project file, so it travels with the project.",
}
SCOPE_TITLES = {BUILTIN: "Built-in", USER: "Yours, for all projects", PROJECT: "This project"}
#: Role of a list item's ``(scope, name)``.
KEY_ROLE = Qt.ItemDataRole.UserRole
NEW_PROMPT = ("Describe what the photo shows in one sentence: the main subject, the setting, "
              "the light.")
#: Seconds the preview waits for its answer.
PREVIEW_TIMEOUT_S = 60.0


def confirm_delete(parent: QWidget | None, name: str) -> bool:
    """Ask before deleting the preset ``name`` (a seam: tests replace it)."""
    answer = QMessageBox.question(
        parent, "Delete Preset?", f"Delete the preset “{name}”? Its prompt is lost.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def unique_name(wanted: str, taken: list[str]) -> str:
    """``wanted``, or ``wanted 2``, ``wanted 3``… -- the first not in ``taken`` (ignoring
    case) and within the name length limit."""
    keys = {name.casefold() for name in taken} | {p.name.casefold() for p in BUILTIN_PRESETS}
    base = wanted[:MAX_NAME_LENGTH]
    number = 1
    name = base
    while name.casefold() in keys:
        number += 1
        suffix = f" {number}"
        name = base[:MAX_NAME_LENGTH - len(suffix)] + suffix
    return name


class PresetsDialog(QDialog):
    """The presets of ``project`` (see the module docstring). ``image`` is the file the
    preview captions (None: no preview); ``backend`` the backend the preview uses instead of
    the project's; ``captioner_factory`` makes its captioner (default: the registry's).
    After the dialog closes, :attr:`project_changed` tells whether the project's profile or
    prompt was changed ("Use for This Project")."""

    def __init__(self, project: Project, parent: QWidget | None = None, *,
                 image: Path | None = None, backend: str | None = None,
                 max_side: int = 1536, model_dir: Path | None = None,
                 captioner_factory: Callable[[BackendConfig], Captioner] | None = None,
                 user_presets_path: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Prompt Presets")
        self.project = project
        self.image = image
        self.backend = backend
        self.max_side = max_side
        self.model_dir = model_dir
        self.project_changed = False
        self._factory = captioner_factory
        self._user_path = user_presets_path
        self._preview_job: PreviewJob | None = None
        self._key: tuple[str, str] | None = None
        self._loading = False
        self._dirty = False

        self._user = load_user_presets(user_presets_path)
        self.load_error = ""
        try:
            self._project_presets = presets_from_json(project.settings.prompt_presets)
        except LoraCapError as exc:
            self._project_presets = []
            self.load_error = str(exc)

        # -- the list
        self.preset_list = QListWidget()
        self.preset_list.setAccessibleName("Prompt presets")
        self.preset_list.setMinimumWidth(180)
        self.new_button = QPushButton("&New")
        self.new_button.setToolTip("A new preset of your own")
        new_menu = QMenu(self.new_button)
        self.new_user_action = new_menu.addAction("For &All Projects",
                                                  lambda: self.new_preset(USER))
        self.new_project_action = new_menu.addAction("For &This Project Only",
                                                     lambda: self.new_preset(PROJECT))
        self.new_button.setMenu(new_menu)
        self.duplicate_button = QPushButton("D&uplicate")
        self.duplicate_button.setToolTip("A copy you can change (built-in presets become "
                                         "yours)")
        self.delete_button = QPushButton("&Delete")
        list_buttons = QHBoxLayout()
        list_buttons.addWidget(self.new_button)
        list_buttons.addWidget(self.duplicate_button)
        list_buttons.addWidget(self.delete_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.preset_list, 1)
        left_layout.addLayout(list_buttons)

        # -- the editor
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("Preset name")
        self.name_edit.setMaxLength(MAX_NAME_LENGTH)
        self.scope_label = QLabel()
        self.scope_label.setWordWrap(True)
        self.scope_label.setAccessibleName("Where the preset is kept")
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setAccessibleName("Prompt")
        self.prompt_edit.setToolTip("What the model is asked for each image. LoRACap adds the "
                                    "rules for the answer's form, the trigger word and the "
                                    "language.")
        self.error_label = message_label("Preset problem")
        self.use_button = QPushButton("Use for This &Project")
        self.use_button.setToolTip("Caption this project's next batches with this prompt")
        self.in_use_label = QLabel()
        self.in_use_label.setWordWrap(True)
        self.in_use_label.setAccessibleName("Preset in use")
        use_row = QHBoxLayout()
        use_row.addWidget(self.use_button)
        use_row.addWidget(self.in_use_label, 1)
        name_label = QLabel("Na&me:")
        name_label.setBuddy(self.name_edit)
        prompt_label = QLabel("Pro&mpt:")
        prompt_label.setBuddy(self.prompt_edit)
        form = QFormLayout()
        form.addRow(name_label, self.name_edit)
        form.addRow("", self.scope_label)

        # -- the preview
        self.preview_group = QGroupBox("Preview on the current image")
        self.preview_button = QPushButton("P&review")
        self.preview_cancel_button = QPushButton("Cancel")
        self.preview_cancel_button.setEnabled(False)
        self.preview_cancel_button.setToolTip("Stop waiting for the answer")
        self.preview_status = QLabel()
        self.preview_status.setWordWrap(True)
        self.preview_status.setAccessibleName("Preview status")
        self.preview_text = QPlainTextEdit()
        self.preview_text.setReadOnly(True)
        self.preview_text.setAccessibleName("Preview caption")
        self.preview_text.setPlaceholderText("The caption the prompt gives appears here; "
                                             "nothing is saved in the project.")
        self.preview_text.setMaximumHeight(110)
        self.preview_error = message_label("Preview problem")
        preview_row = QHBoxLayout()
        preview_row.addWidget(self.preview_button)
        preview_row.addWidget(self.preview_cancel_button)
        preview_row.addWidget(self.preview_status, 1)
        preview_layout = QVBoxLayout(self.preview_group)
        preview_layout.addLayout(preview_row)
        preview_layout.addWidget(self.preview_text)
        preview_layout.addWidget(self.preview_error)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(form)
        right_layout.addWidget(prompt_label)
        right_layout.addWidget(self.prompt_edit, 1)
        right_layout.addWidget(self.error_label)
        right_layout.addLayout(use_row)
        right_layout.addWidget(self.preview_group)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)
        self.load_label = message_label("Project presets problem")
        set_message(self.load_label, self.load_error, error=True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.load_label)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.buttons)

        # Enter in the name field finishes the name; it must not open New's menu or close.
        for button in (self.new_button, self.duplicate_button, self.delete_button,
                       self.use_button, self.preview_button, self.preview_cancel_button,
                       *self.buttons.buttons()):
            button.setAutoDefault(False)
            button.setDefault(False)
        self.preset_list.currentItemChanged.connect(self._on_current_changed)
        self.name_edit.textEdited.connect(self._on_edited)
        self.prompt_edit.textChanged.connect(self._on_edited)
        self.name_edit.editingFinished.connect(lambda: self.save_current())
        self.duplicate_button.clicked.connect(lambda: self.duplicate())
        self.delete_button.clicked.connect(lambda: self.delete())
        self.use_button.clicked.connect(lambda: self.use_for_project())
        self.preview_button.clicked.connect(lambda: self.preview())
        self.preview_cancel_button.clicked.connect(self.cancel_preview)

        self._fill_list(self._in_use_key())
        if self.image is None:
            self.preview_button.setEnabled(False)
            self.preview_button.setToolTip("Open an image in the window first")
        start_size(self, 820, 560)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return super().sizeHint().expandedTo(QSize(820, 560))

    # ------------------------------------------------------------------ the list

    def presets(self, scope: str) -> list[PromptPreset]:
        """The presets of ``scope`` (``builtin``, ``user``, ``project``) as saved."""
        if scope == BUILTIN:
            return list(BUILTIN_PRESETS)
        return list(self._user if scope == USER else self._project_presets)

    def _find(self, key: tuple[str, str] | None) -> PromptPreset | None:
        if key is None:
            return None
        scope, name = key
        return next((p for p in self.presets(scope) if p.name == name), None)

    @property
    def current(self) -> PromptPreset | None:
        """The preset shown in the editor, as saved."""
        return self._find(self._key)

    @property
    def current_scope(self) -> str | None:
        """The scope of the preset shown, or None."""
        return self._key[0] if self._key is not None else None

    def _in_use_key(self) -> tuple[str, str] | None:
        """The preset the project captions with: its built-in profile's, or the user or
        project preset whose prompt is the project's custom prompt."""
        settings = self.project.settings
        if settings.profile != Profile.CUSTOM.value:
            preset = next((p for p in BUILTIN_PRESETS if p.profile.value == settings.profile),
                          None)
            return (BUILTIN, preset.name) if preset is not None else None
        prompt = settings.custom_prompt.strip()
        for scope in (PROJECT, USER):
            for preset in self.presets(scope):
                if preset.prompt == prompt:
                    return scope, preset.name
        return None

    def _fill_list(self, select: tuple[str, str] | None) -> None:
        self._loading = True
        self.preset_list.clear()
        in_use = self._in_use_key()
        bold = QFont(self.preset_list.font())
        bold.setBold(True)
        chosen: QListWidgetItem | None = None
        for scope in (BUILTIN, USER, PROJECT):
            header = QListWidgetItem(SCOPE_TITLES[scope])
            header.setFlags(Qt.ItemFlag.ItemIsEnabled)  # readable, not selectable
            header.setFont(bold)
            self.preset_list.addItem(header)
            presets = self.presets(scope)
            if not presets:
                empty = QListWidgetItem("   (none yet: New or Duplicate)")
                empty.setFlags(Qt.ItemFlag.NoItemFlags)
                self.preset_list.addItem(empty)
            for preset in presets:
                mark = " ✓" if in_use == (scope, preset.name) else ""
                item = QListWidgetItem(f"   {preset.name}{mark}")
                item.setData(KEY_ROLE, (scope, preset.name))
                if mark:
                    item.setToolTip("This project captions with it")
                self.preset_list.addItem(item)
                if (scope, preset.name) == select:
                    chosen = item
        self._loading = False
        if chosen is None:
            chosen = next((self.preset_list.item(i) for i in range(self.preset_list.count())
                           if self.preset_list.item(i).data(KEY_ROLE) is not None), None)
        self.preset_list.setCurrentItem(chosen)
        if chosen is not None and chosen.data(KEY_ROLE) == self._key:
            self._show(self._key)  # the same key: currentItemChanged may not come

    def select(self, scope: str, name: str) -> None:
        """Show the preset ``name`` of ``scope`` (as a click in the list would)."""
        for row in range(self.preset_list.count()):
            item = self.preset_list.item(row)
            if item is not None and item.data(KEY_ROLE) == (scope, name):
                self.preset_list.setCurrentItem(item)
                return

    @pyqtSlot(QListWidgetItem, QListWidgetItem)
    def _on_current_changed(self, current: QListWidgetItem | None,
                            previous: QListWidgetItem | None) -> None:
        if self._loading:
            return
        if previous is not None and previous.data(KEY_ROLE) is None:
            previous = None  # a heading
        if not self.save_current():
            # The edit cannot be saved: stay on it, with the reason shown.
            self.preset_list.blockSignals(True)
            self.preset_list.setCurrentItem(previous)
            self.preset_list.blockSignals(False)
            return
        key = current.data(KEY_ROLE) if current is not None else None
        self._show(tuple(key) if key is not None else None)

    def _show(self, key: tuple[str, str] | None) -> None:
        self._key = key
        preset = self._find(key)
        self._loading = True
        self.name_edit.setText(preset.name if preset else "")
        self.prompt_edit.setPlainText(preset.prompt if preset else "")
        self._loading = False
        self._dirty = False
        editable = preset is not None and key is not None and key[0] != BUILTIN
        self.name_edit.setReadOnly(not editable)
        self.prompt_edit.setReadOnly(not editable)
        self.scope_label.setText(SCOPE_NOTES[key[0]] if key else "")
        self.delete_button.setEnabled(editable)
        self.duplicate_button.setEnabled(preset is not None)
        self.use_button.setEnabled(preset is not None and not self.project.read_only)
        set_message(self.error_label, "")
        in_use = self._find(self._in_use_key())
        self.in_use_label.setText(f"This project uses “{in_use.name}”." if in_use else
                                  "This project uses its own custom prompt.")

    @pyqtSlot()
    def _on_edited(self) -> None:
        if not self._loading and self.current_scope in (USER, PROJECT):
            self._dirty = True

    # ------------------------------------------------------------------ saving

    def _store(self, scope: str, presets: list[PromptPreset]) -> None:
        """Save ``presets`` as the whole list of ``scope``; raises the core's errors."""
        if scope == USER:
            save_user_presets(presets, self._user_path)
            self._user = list(presets)
        elif scope == PROJECT:
            self.project.update_settings(prompt_presets=presets_to_json(presets))
            self._project_presets = list(presets)
        else:
            raise LoraCapError("Built-in presets cannot be changed; duplicate one first.")

    def save_current(self) -> bool:
        """Save the edited name and prompt of the shown preset; False (with the reason under
        the editor) when they cannot be saved. True when there is nothing to save."""
        if not self._dirty or self._key is None or self._key[0] == BUILTIN:
            return True
        scope, old_name = self._key
        presets = self.presets(scope)
        index = next((i for i, p in enumerate(presets) if p.name == old_name), -1)
        try:
            edited = user_preset(self.name_edit.text(), self.prompt_edit.toPlainText())
            if index < 0:
                presets.append(edited)
            else:
                presets[index] = edited
            self._store(scope, presets)
        except LoraCapError as exc:
            set_message(self.error_label, str(exc), error=True)
            return False
        self._dirty = False
        set_message(self.error_label, "")
        self._key = (scope, edited.name)
        if edited.name != old_name:
            # Renamed in place: the list may be in the middle of a selection change.
            for row in range(self.preset_list.count()):
                item = self.preset_list.item(row)
                if item is not None and item.data(KEY_ROLE) == (scope, old_name):
                    item.setData(KEY_ROLE, self._key)
                    item.setText(f"   {edited.name}")
        return True

    def new_preset(self, scope: str, *, name: str = "New preset",
                   prompt: str = NEW_PROMPT) -> None:
        """Make a preset in ``scope`` (``user`` or ``project``) and show it for editing."""
        if not self.save_current():
            return
        presets = self.presets(scope)
        preset = user_preset(unique_name(name, [p.name for p in presets]), prompt)
        try:
            self._store(scope, [*presets, preset])
        except LoraCapError as exc:
            set_message(self.error_label, str(exc), error=True)
            return
        self._fill_list((scope, preset.name))
        self.name_edit.setFocus()
        self.name_edit.selectAll()

    def duplicate(self) -> None:
        """Copy the shown preset: a built-in or user one becomes a user preset, a project one
        a project preset."""
        if not self.save_current():
            return
        preset = self.current
        if preset is None or self._key is None:
            return
        scope = PROJECT if self._key[0] == PROJECT else USER
        self.new_preset(scope, name=f"{preset.name} copy", prompt=preset.prompt)

    def delete(self) -> None:
        """Delete the shown user or project preset (after asking)."""
        preset = self.current
        if preset is None or self._key is None or self._key[0] == BUILTIN:
            return
        if not confirm_delete(self, preset.name):
            return
        scope = self._key[0]
        try:
            self._store(scope, [p for p in self.presets(scope) if p.name != preset.name])
        except LoraCapError as exc:
            set_message(self.error_label, str(exc), error=True)
            return
        self._dirty = False
        self._key = None
        self._fill_list(None)

    def use_for_project(self) -> None:
        """Caption the project with the shown preset: its built-in profile, or the custom
        prompt."""
        if not self.save_current():
            return
        preset = self.current
        if preset is None:
            return
        try:
            if preset.builtin:
                self.project.update_settings(profile=preset.profile.value)
            else:
                self.project.update_settings(profile=Profile.CUSTOM.value,
                                             custom_prompt=preset.prompt)
        except LoraCapError as exc:
            set_message(self.error_label, str(exc), error=True)
            return
        self.project_changed = True
        self._fill_list(self._key)

    # ------------------------------------------------------------------ preview

    @property
    def preview_job(self) -> PreviewJob | None:
        """The running (or last) preview."""
        return self._preview_job

    def _instructions(self) -> Instructions:
        preset = self.current
        language = self.project.settings.language
        if preset is not None and preset.builtin:
            return build_instructions(preset.profile, language=language)
        return build_instructions(Profile.CUSTOM, self.prompt_edit.toPlainText(),
                                  language=language)

    def preview(self) -> None:
        """Caption the current image once with the prompt in the editor (background)."""
        if self.image is None or (self._preview_job is not None
                                  and self._preview_job.is_running):
            return
        from loracap.core.backends.registry import resolve_config

        settings = self.project.settings
        backend = self.backend or settings.backend
        try:
            instructions = self._instructions()
            config = resolve_config(settings, backend=self.backend,
                                    model_dir=self.model_dir if backend == "wd14" else None,
                                    timeout_s=PREVIEW_TIMEOUT_S)
        except LoraCapError as exc:
            set_message(self.preview_error, str(exc), error=True)
            return
        job = PreviewJob(config, self.image, instructions, trigger=settings.trigger,
                         prefix=settings.prefix, max_side=self.max_side,
                         factory=self._factory, parent=self)
        job.finished.connect(self._on_preview)
        job.failed.connect(self._on_preview_failed)
        job.cancelled.connect(self._on_preview_cancelled)
        self._preview_job = job
        set_message(self.preview_error, "")
        self.preview_text.clear()
        self.preview_status.setText(f"Asking {config.backend} {config.model or ''}…".strip())
        self.preview_button.setEnabled(False)
        self.preview_cancel_button.setEnabled(True)
        job.start()

    @pyqtSlot()
    def cancel_preview(self) -> None:
        """Stop waiting for the preview's answer."""
        if self._preview_job is not None and self._preview_job.is_running:
            self._preview_job.cancel()

    def _preview_done(self) -> None:
        self.preview_button.setEnabled(self.image is not None)
        self.preview_cancel_button.setEnabled(False)

    @pyqtSlot(object)
    def _on_preview(self, preview: Preview) -> None:
        self._preview_done()
        self.preview_text.setPlainText(self.project.settings.prefix + preview.body)
        usage = preview.usage
        cost = load_prices().cost(preview.backend, preview.model, usage.input_tokens,
                                  usage.output_tokens)
        if usage.total == 0:
            cost = 0.0 if preview.backend == "wd14" else cost
        self.preview_status.setText(
            f"{preview.backend} {preview.model}: {usage.input_tokens:,} input + "
            f"{usage.output_tokens:,} output tokens, about {format_cost(cost)}")

    @pyqtSlot(str)
    def _on_preview_failed(self, message: str) -> None:
        self._preview_done()
        self.preview_status.setText("")
        set_message(self.preview_error, message, error=True)

    @pyqtSlot()
    def _on_preview_cancelled(self) -> None:
        self._preview_done()
        self.preview_status.setText("Preview cancelled.")

    # ------------------------------------------------------------------ closing

    def done(self, result: int) -> None:
        """Save the edit in progress; stay open when it cannot be saved."""
        if not self.save_current():
            return
        self.cancel_preview()
        super().done(result)

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 (Qt naming)
        if not self.save_current():
            if event is not None:
                event.ignore()
            return
        super().closeEvent(event)
