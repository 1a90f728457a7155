"""File > Settings, Captioning tab: backend, server, model, key, language and each backend's
options, stored in the project (or as the defaults for new projects) and shown again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QLineEdit

from loracap.core.keys import KEYRING_SERVICE
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.settings import AppSettings
from loracap.ui.settings_dialog import ApiKeyDialog, SettingsDialog
from tests.fakes.memory_keyring import MemoryKeyring
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.photos import make_photo_folder

LEFT = Qt.MouseButton.LeftButton

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                                       extend=True)


@pytest.fixture(autouse=True)
def clean_state(qtbot, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty keychain, no keys or server addresses in the environment."""
    MemoryKeyring.store.clear()
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                 "OPENAI_BASE_URL"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    yield
    MemoryKeyring.store.clear()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 2, size=(96, 64))
    proj = Project.create(folder / "hall.loraproj", trigger="hall")
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


def open_settings(qtbot, settings: AppSettings, project: Project | None) -> SettingsDialog:
    dialog = SettingsDialog(settings, project)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def retype(qtbot, edit: QLineEdit, text: str) -> None:
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, text)


def press_ok(qtbot, dialog: SettingsDialog) -> None:
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), LEFT)


def test_an_ollama_server_is_stored_in_the_project_and_shown_again(
        qtbot, project: Project, app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    panel = dialog.backend_panel
    assert not panel.preset_combo.isVisible()  # Gemini: no server to choose
    panel.set_backend("openai")
    assert panel.preset_combo.isVisible() and panel.base_url_edit.isVisible()
    panel.set_preset("ollama")
    assert panel.base_url_edit.text() == "http://localhost:11434/v1"
    assert dialog.key_label.text() == "None needed for a server on this computer."
    retype(qtbot, dialog.model_combo.lineEdit(), "qwen2.5vl:7b")
    dialog.language_combo.setCurrentIndex(dialog.language_combo.findData("de"))
    press_ok(qtbot, dialog)
    assert dialog.result() == QDialog.DialogCode.Accepted
    settings = project.settings
    assert (settings.backend, settings.base_url, settings.model, settings.language) == (
        "openai", "http://localhost:11434/v1", "qwen2.5vl:7b", "de")

    again = open_settings(qtbot, app_settings, project)
    assert again.backend_combo.currentData() == "openai"
    assert again.backend_panel.preset_combo.currentText() == "Ollama"
    assert again.backend_panel.base_url_edit.text() == "http://localhost:11434/v1"
    assert again.model_combo.currentText() == "qwen2.5vl:7b"
    assert again.language_combo.currentText() == "German (Deutsch)"


def test_typing_a_known_address_picks_its_preset_and_another_is_custom(
        qtbot, project: Project, app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    panel = dialog.backend_panel
    panel.set_backend("openai")
    assert panel.preset_combo.currentText() == "OpenAI"  # empty: OpenAI's own address
    retype(qtbot, panel.base_url_edit, "http://127.0.0.1:1234/v1/")
    assert panel.preset_combo.currentText() == "LM Studio"
    retype(qtbot, panel.base_url_edit, "http://gpu-box:9000/v1")
    assert panel.preset_combo.currentText() == "Custom"
    assert dialog.key_label.text() == "No API key is set yet (a local server needs none)."


def test_a_bad_server_url_is_said_under_the_field_and_not_saved(
        qtbot, project: Project, app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    panel = dialog.backend_panel
    panel.set_backend("openai")
    retype(qtbot, panel.base_url_edit, "localhost:11434")
    assert panel.url_message.isVisible()
    assert "is not an http:// or https:// address" in panel.url_message.text()
    press_ok(qtbot, dialog)
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert "is not an http:// or https:// address" in dialog.error_label.text()
    assert project.settings.backend == "gemini" and project.settings.base_url == ""
    retype(qtbot, panel.base_url_edit, "http://localhost:11434/v1")
    assert not panel.url_message.isVisible()


def test_wd14_options_and_the_model_folder_round_trip(qtbot, project: Project,
                                                      app_settings: AppSettings,
                                                      tmp_path: Path) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    panel = dialog.backend_panel
    panel.set_backend("wd14")
    assert panel.wd14_group.isVisible() and not panel.hints_group.isVisible()
    assert not dialog.change_key_button.isVisible()
    assert not panel.refresh_button.isVisible()
    assert (panel.general_spin.value(), panel.character_spin.value()) == (0.35, 0.85)
    assert [dialog.model_combo.itemText(i) for i in range(3)] == [
        "wd-eva02-large-tagger-v3", "wd-vit-large-tagger-v3", "wd-swinv2-tagger-v3"]
    panel.general_spin.setValue(0.5)
    panel.character_spin.setValue(0.7)
    qtbot.mouseClick(panel.rating_check, LEFT)
    qtbot.keyClicks(panel.exclude_edit, "simple background, Long_Hair")
    qtbot.mouseClick(panel.mcut_check, LEFT)
    assert not panel.general_spin.isEnabled()  # MCut chooses the thresholds
    folder = tmp_path / "my-tagger"
    folder.mkdir()
    panel.choose_model_dir(folder)
    dialog.model_combo.setCurrentText("wd-vit-tagger-v3")
    press_ok(qtbot, dialog)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert project.settings.backend == "wd14"
    assert project.settings.model == "wd-vit-tagger-v3"
    assert dict(project.settings.options_for("wd14")) == {
        "general_threshold": 0.5, "character_threshold": 0.7, "mcut": True,
        "include_rating": True, "exclude": ["simple background", "Long_Hair"]}
    assert app_settings.wd14_model_dir == folder  # this computer's folder, not the project's

    again = open_settings(qtbot, app_settings, project)
    panel = again.backend_panel
    assert (panel.general_spin.value(), panel.character_spin.value()) == (0.5, 0.7)
    assert panel.mcut_check.isChecked() and panel.rating_check.isChecked()
    assert panel.exclude_edit.text() == "simple background, Long_Hair"
    assert panel.model_dir_edit.text() == str(folder)


def test_tagger_hints_are_a_vision_backends_option(qtbot, project: Project,
                                                   app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    panel = dialog.backend_panel
    assert panel.hints_group.isVisible() and not panel.hints_model_combo.isEnabled()
    qtbot.mouseClick(panel.hints_check, LEFT)
    assert panel.hints_model_combo.isEnabled()
    panel.hints_model_combo.setCurrentText("wd-swinv2-tagger-v3")
    # Looking at another backend and back keeps the choice.
    panel.set_backend("anthropic")
    assert not panel.hints_check.isChecked()
    panel.set_backend("gemini")
    assert panel.hints_check.isChecked()
    press_ok(qtbot, dialog)
    assert dict(project.settings.options_for("gemini")) == {
        "tagger_hints": True, "tagger_model": "wd-swinv2-tagger-v3"}
    assert project.settings.options_for("anthropic") == {}  # untouched backends stay empty
    again = open_settings(qtbot, app_settings, project)
    assert again.backend_panel.hints_check.isChecked()
    assert again.backend_panel.hints_model_combo.currentText() == "wd-swinv2-tagger-v3"


def test_options_learned_from_a_server_are_kept(qtbot, project: Project,
                                                app_settings: AppSettings) -> None:
    project.update_backend_options("openai", structured_output=False)
    dialog = open_settings(qtbot, app_settings, project)
    dialog.backend_panel.set_backend("openai")
    dialog.backend_panel.set_preset("vllm")
    press_ok(qtbot, dialog)
    assert project.settings.options_for("openai") == {"structured_output": False}


def test_without_a_project_the_choices_are_the_defaults_for_new_projects(
        qtbot, app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, None)
    panel = dialog.backend_panel
    panel.set_backend("openai")
    panel.set_preset("lmstudio")
    dialog.language_combo.setCurrentIndex(dialog.language_combo.findData("ja"))
    qtbot.mouseClick(panel.hints_check, LEFT)
    press_ok(qtbot, dialog)
    assert (app_settings.default_backend, app_settings.default_base_url,
            app_settings.default_language) == ("openai", "http://localhost:1234/v1", "ja")
    assert app_settings.default_backend_options == {
        "openai": {"tagger_hints": True, "tagger_model": "wd-eva02-large-tagger-v3"}}
    again = open_settings(qtbot, app_settings, None)
    assert again.backend_combo.currentData() == "openai"
    assert again.backend_panel.preset_combo.currentText() == "LM Studio"


def test_refresh_lists_the_models_of_an_openai_compatible_server(
        qtbot, project: Project, app_settings: AppSettings) -> None:
    with FakeOpenAIServer(models=("llava:13b", "qwen2.5vl:7b")) as server:
        dialog = open_settings(qtbot, app_settings, project)
        panel = dialog.backend_panel
        panel.set_backend("openai")
        retype(qtbot, panel.base_url_edit, server.base_url)
        qtbot.mouseClick(dialog.refresh_button, LEFT)
        qtbot.waitUntil(lambda: dialog.model_combo.count() == 2, timeout=20_000)
        assert [dialog.model_combo.itemText(i) for i in range(2)] == ["llava:13b",
                                                                     "qwen2.5vl:7b"]
        assert dialog.model_message.text() == "2 models can write captions."
        assert [r.path for r in server.requests] == ["/v1/models"]
        # Each backend keeps its own list: Gemini's is not the server's.
        panel.set_backend("gemini")
        assert dialog.model_combo.findText("llava:13b") < 0


def test_change_key_asks_for_the_key_of_the_backend_shown(qtbot, project: Project,
                                                          app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    dialog.backend_panel.set_backend("anthropic")
    assert dialog.key_label.text() == "No API key is set yet."
    qtbot.mouseClick(dialog.change_key_button, LEFT)
    key_dialog = dialog.findChild(ApiKeyDialog)
    assert key_dialog is not None and key_dialog.isVisible()
    assert key_dialog.windowTitle() == "Claude API Key"
    assert "Claude Console" in key_dialog.intro_label.text()
    qtbot.keyClicks(key_dialog.key_edit, "sk-ant-test")
    qtbot.mouseClick(key_dialog.save_button, LEFT)
    assert keyring.get_password(KEYRING_SERVICE, "anthropic-api-key") == "sk-ant-test"
    assert keyring.get_password(KEYRING_SERVICE, "gemini-api-key") is None
    assert dialog.key_label.text() == "A key from the OS keychain is in use."


def test_the_speed_note_says_what_automatic_means_for_the_backend(
        qtbot, project: Project, app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    assert "for Google Gemini that is 4 at once and 10 per minute" in dialog.pace_note.text()
    dialog.backend_panel.set_backend("openai")
    dialog.backend_panel.set_preset("ollama")
    assert "that is 1 at once and no limit per minute" in dialog.pace_note.text()


def test_switching_the_projects_backend_and_back_keeps_each_model(
        qtbot, project: Project, app_settings: AppSettings) -> None:
    dialog = open_settings(qtbot, app_settings, project)
    dialog.backend_panel.set_backend("anthropic")
    dialog.model_combo.setCurrentText("claude-sonnet-4-5")
    press_ok(qtbot, dialog)
    assert (project.settings.backend, project.settings.model) == (
        "anthropic", "claude-sonnet-4-5")
    dialog = open_settings(qtbot, app_settings, project)
    dialog.backend_panel.set_backend("gemini")
    press_ok(qtbot, dialog)
    assert project.settings.backend == "gemini"
    assert project.settings.options_for("anthropic")["model"] == "claude-sonnet-4-5"
    dialog = open_settings(qtbot, app_settings, project)
    dialog.backend_panel.set_backend("anthropic")
    assert dialog.model_combo.currentText() == "claude-sonnet-4-5"


def test_the_people_tab_of_a_multi_person_project(qtbot, project: Project,
                                                  app_settings: AppSettings,
                                                  tmp_path: Path) -> None:
    assert open_settings(qtbot, app_settings, project).people_page is None  # not multi-person
    project.update_settings(profile="multi-person")
    dialog = open_settings(qtbot, app_settings, project)
    page = dialog.people_page
    assert page is not None and dialog.tabs.indexOf(page) >= 0
    retype(qtbot, page.aliases_edit, "Anna, anna")
    press_ok(qtbot, dialog)
    # Two aliases alike (ignoring case) are refused: the dialog stays open on the People tab.
    assert dialog.isVisible() and dialog.tabs.currentWidget() is page
    assert "anna" in dialog.error_label.text().lower()
    assert project.settings.aliases == ()
    retype(qtbot, page.aliases_edit, "ohwx_anna, ben")
    page.order_combo.setCurrentIndex(1)
    retype(qtbot, page.detector_edit, str(tmp_path / "missing.onnx"))
    press_ok(qtbot, dialog)
    assert dialog.isVisible() and "is not a file" in dialog.error_label.text()
    model = tmp_path / "yolo.onnx"
    model.write_bytes(b"onnx")
    retype(qtbot, page.detector_edit, str(model))
    press_ok(qtbot, dialog)
    assert not dialog.isVisible()
    settings = project.settings
    assert (settings.aliases, settings.people_order, settings.detector) == (
        ("ohwx_anna", "ben"), "size", str(model))
    again = open_settings(qtbot, app_settings, project).people_page
    assert again is not None and again.aliases_edit.text() == "ohwx_anna, ben"
    assert again.order_combo.currentData() == "size"
