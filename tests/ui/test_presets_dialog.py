"""Captions > Prompt Presets…: built-in, user and project presets, and the preview on the
current image against the fake Gemini server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

from loracap.core.presets import BUILTIN_PRESETS, load_user_presets, presets_from_json
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui import presets_dialog as presets_mod
from loracap.ui.presets_dialog import PROJECT, USER, PresetsDialog
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo_folder

LEFT = Qt.MouseButton.LeftButton

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                                       extend=True)


@pytest.fixture(autouse=True)
def no_background_left(qtbot) -> Iterator[None]:
    yield
    qtbot.waitUntil(lambda: not background._LIVE, timeout=20_000)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 2, size=(160, 120))
    proj = Project.create(folder / "hall.loraproj", trigger="ide_main_hall")
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "presets.json"


def open_presets(qtbot, project: Project, user_file: Path, **kwargs) -> PresetsDialog:
    image = project.resolve(project.images()[0].path)
    dialog = PresetsDialog(project, image=image, user_presets_path=user_file, **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def names(dialog: PresetsDialog, scope: str) -> list[str]:
    return [p.name for p in dialog.presets(scope)]


def test_built_in_presets_are_listed_read_only_and_the_one_in_use_is_marked(
        qtbot, project: Project, user_file: Path) -> None:
    dialog = open_presets(qtbot, project, user_file)
    texts = [dialog.preset_list.item(i).text().strip()
             for i in range(dialog.preset_list.count())]
    assert texts[:2] == ["Built-in", "Interior space ✓"]  # the project's profile
    assert texts[2:6] == [p.name for p in BUILTIN_PRESETS[1:]]
    assert dialog.current.name == "Interior space"
    assert dialog.name_edit.isReadOnly() and dialog.prompt_edit.isReadOnly()
    assert not dialog.delete_button.isEnabled()
    assert dialog.scope_label.text().startswith("Built-in, read-only")


def test_user_presets_are_created_renamed_edited_duplicated_and_deleted(
        qtbot, project: Project, user_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dialog = open_presets(qtbot, project, user_file)
    dialog.new_user_action.trigger()
    assert dialog.current_scope == USER and dialog.current.name == "New preset"
    assert [p.name for p in load_user_presets(user_file)] == ["New preset"]  # saved at once

    dialog.name_edit.selectAll()
    qtbot.keyClicks(dialog.name_edit, "Facades")
    dialog.prompt_edit.setPlainText("Describe the facade: material, windows, storeys.")
    qtbot.keyClick(dialog.name_edit, Qt.Key.Key_Return)  # editing finished: saved
    assert dialog.isVisible()  # Enter neither closes the dialog nor opens New's menu
    saved = load_user_presets(user_file)
    assert [(p.name, p.prompt) for p in saved] == [
        ("Facades", "Describe the facade: material, windows, storeys.")]

    # A built-in preset duplicated becomes the user's own, with its prompt.
    dialog.select("builtin", "Person")
    qtbot.mouseClick(dialog.duplicate_button, LEFT)
    assert dialog.current_scope == USER and dialog.current.name == "Person copy"
    assert dialog.current.prompt == BUILTIN_PRESETS[1].prompt
    assert names(dialog, USER) == ["Facades", "Person copy"]

    asked: list[str] = []
    monkeypatch.setattr(presets_mod, "confirm_delete",
                        lambda _parent, name: asked.append(name) or True)
    qtbot.mouseClick(dialog.delete_button, LEFT)
    assert asked == ["Person copy"]
    assert [p.name for p in load_user_presets(user_file)] == ["Facades"]


def test_a_name_that_cannot_be_saved_keeps_the_editor_on_it(qtbot, project: Project,
                                                            user_file: Path) -> None:
    dialog = open_presets(qtbot, project, user_file)
    dialog.new_user_action.trigger()
    dialog.new_user_action.trigger()
    assert names(dialog, USER) == ["New preset", "New preset 2"]
    dialog.name_edit.selectAll()
    qtbot.keyClicks(dialog.name_edit, "new PRESET")  # the other's name, ignoring case
    dialog.select("builtin", "Person")
    assert dialog.current_scope == USER  # stayed on the edit
    assert dialog.error_label.isVisible()
    assert 'Two presets are named "new PRESET"' in dialog.error_label.text()
    assert [p.name for p in load_user_presets(user_file)] == ["New preset", "New preset 2"]
    dialog.name_edit.selectAll()
    qtbot.keyClicks(dialog.name_edit, "Lobby")
    dialog.select("builtin", "Person")
    assert dialog.current.name == "Person"
    assert [p.name for p in load_user_presets(user_file)] == ["New preset", "Lobby"]


def test_project_presets_are_stored_in_the_project_and_one_can_be_used(
        qtbot, project: Project, user_file: Path) -> None:
    dialog = open_presets(qtbot, project, user_file)
    dialog.new_project_action.trigger()
    assert dialog.current_scope == PROJECT
    dialog.name_edit.selectAll()
    qtbot.keyClicks(dialog.name_edit, "Hall details")
    dialog.prompt_edit.setPlainText("Name the seating, the lights and the screen.")
    qtbot.mouseClick(dialog.use_button, LEFT)  # saves the edit first
    stored = presets_from_json(project.settings.prompt_presets)
    assert [(p.name, p.prompt) for p in stored] == [
        ("Hall details", "Name the seating, the lights and the screen.")]
    assert not user_file.exists()  # nothing went to the user's presets
    assert project.settings.profile == "custom"
    assert project.settings.custom_prompt == "Name the seating, the lights and the screen."
    assert dialog.project_changed
    assert dialog.in_use_label.text() == "This project uses “Hall details”."
    # A built-in preset sets the profile back.
    dialog.select("builtin", "Booru tags")
    qtbot.mouseClick(dialog.use_button, LEFT)
    assert project.settings.profile == "tags"


def test_the_preview_sends_the_edited_prompt_and_shows_the_caption_and_its_tokens(
        qtbot, project: Project, user_file: Path, gemini_server: FakeGeminiServer) -> None:
    dialog = open_presets(qtbot, project, user_file)
    dialog.new_user_action.trigger()
    dialog.prompt_edit.setPlainText("Describe only the ceiling of the hall.")
    qtbot.mouseClick(dialog.preview_button, LEFT)
    assert dialog.preview_cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.preview_job.finished, timeout=20_000):
        pass
    (request,) = gemini_server.generate_requests
    assert "Describe only the ceiling of the hall." in request.prompt
    assert request.image is not None
    caption = dialog.preview_text.toPlainText()
    assert caption.startswith("photo of ide_main_hall ") and len(caption) > 30
    # The fake server counts 270 prompt and 20 answer tokens; Flash costs $0.30 / $2.50 per
    # million: 0.000081 + 0.00005.
    assert dialog.preview_status.text() == (
        "gemini gemini-flash-latest: 270 input + 20 output tokens, about $0.0001")
    assert project.stats().captioned == 0  # a preview stores nothing


def test_a_preview_can_be_cancelled(qtbot, project: Project, user_file: Path,
                                    gemini_server: FakeGeminiServer) -> None:
    gemini_server.latency_s = 5.0
    dialog = open_presets(qtbot, project, user_file)
    qtbot.mouseClick(dialog.preview_button, LEFT)
    qtbot.waitUntil(lambda: len(gemini_server.requests) == 1, timeout=10_000)
    qtbot.mouseClick(dialog.preview_cancel_button, LEFT)
    assert dialog.preview_status.text() == "Preview cancelled."
    assert dialog.preview_button.isEnabled()
    assert dialog.preview_text.toPlainText() == ""


def test_a_preview_error_is_shown_in_the_dialog(qtbot, project: Project, user_file: Path,
                                                gemini_server: FakeGeminiServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "bad-key")
    dialog = open_presets(qtbot, project, user_file)
    qtbot.mouseClick(dialog.preview_button, LEFT)
    qtbot.waitUntil(dialog.preview_error.isVisible, timeout=20_000)
    assert dialog.preview_error.text().startswith("Gemini refused the API key")


def test_a_preview_without_a_key_says_how_to_get_one(qtbot, project: Project,
                                                     user_file: Path) -> None:
    dialog = open_presets(qtbot, project, user_file)
    qtbot.mouseClick(dialog.preview_button, LEFT)
    assert dialog.preview_job is None
    assert dialog.preview_error.text().startswith("No Gemini API key found.")


def test_a_damaged_user_presets_file_is_set_aside(qtbot, project: Project,
                                                  user_file: Path) -> None:
    user_file.parent.mkdir(parents=True)
    user_file.write_text(json.dumps({"presets": [{"name": ""}]}), encoding="utf-8")
    dialog = open_presets(qtbot, project, user_file)
    assert names(dialog, USER) == []
    assert user_file.with_name("presets.json.bad").exists()
