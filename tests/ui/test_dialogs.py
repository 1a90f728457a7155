"""The dialogs, driven like a user would: real photo folders, real projects, real zips, the
in-memory keyring and the fake Gemini server. No dialog is exec()'d: message boxes go through
the module's seams (ask_replace, show_message, show_export_done), replaced here."""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from PyQt6.QtCore import QPoint, QSettings, Qt, QTimer
from PyQt6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLineEdit,
    QMessageBox,
)

import loracap.core.scan as scan_module
from loracap.core.backends.gemini import DEFAULT_MODEL
from loracap.core.errors import ExportError
from loracap.core.exports import (
    FORMATS,
    REPLICATE_FORMAT,
    ExportFormat,
    ExportOptions,
    ExportResult,
    ReviewFilter,
    default_output,
    plan_export,
)
from loracap.core.keys import KEYRING_SERVICE, KEYRING_USERNAME, find_api_key
from loracap.core.project import Project
from loracap.core.prompts import Profile
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui import dialogs
from loracap.ui.export_dialog import ExportDialog
from loracap.ui.new_project_dialog import TRIGGER_HINT, NewProjectDialog
from loracap.ui.settings import AppSettings
from loracap.ui.settings_dialog import ApiKeyDialog, SettingsDialog
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.memory_keyring import MemoryKeyring
from tests.fakes.photos import make_photo, make_photo_folder

LEFT = Qt.MouseButton.LeftButton

# The offscreen platform plugin cannot pass a shown window's new minimum size to a window system
# (there is none) and says so whenever a label appears in a shown dialog; real platforms do.
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                                       extend=True)


@pytest.fixture(autouse=True)
def clean_state(qtbot, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Empty keychain, no key in the environment (restored afterwards, even when a dialog set
    one), and no background task left running after the test."""
    MemoryKeyring.store.clear()
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    yield
    MemoryKeyring.store.clear()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)


class Gate:
    """Holds the folder scan inside ``probe_image`` for files under ``folder``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.probed: list[Path] = []
        real = scan_module.probe_image

        def gated(path: Path):  # type: ignore[no-untyped-def]
            if folder in Path(path).parents:
                self.probed.append(Path(path))
                self.entered.set()
                self.released.wait(10)
            return real(path)

        monkeypatch.setattr(scan_module, "probe_image", gated)


@pytest.fixture
def hall(tmp_path: Path) -> Path:
    """A folder "IDE Main-Hall" with three photos, a broken JPEG and a HEIC file."""
    folder = tmp_path / "IDE Main-Hall"
    make_photo_folder(folder, 3, size=(96, 64))
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    return folder


def open_new_project(qtbot, folder: Path | None) -> NewProjectDialog:
    dialog = NewProjectDialog(folder)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def wait_scanned(qtbot, dialog: NewProjectDialog) -> None:
    qtbot.waitUntil(lambda: dialog.scanned_files is not None, timeout=10_000)


def retype(qtbot, edit: QLineEdit, text: str) -> None:
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, text)


# ------------------------------------------------------------------------------------ new project


def test_trigger_is_suggested_from_the_folder_and_checked_as_you_type(qtbot, hall: Path) -> None:
    dialog = open_new_project(qtbot, hall)
    wait_scanned(qtbot, dialog)
    assert dialog.trigger_edit.text() == "ide_main_hall"
    assert dialog.trigger_message.text() == "Captions will start with “photo of ide_main_hall”."
    assert dialog.create_button.isEnabled()

    retype(qtbot, dialog.trigger_edit, "IDE Main Hall")
    assert dialog.trigger_message.text() == (
        'Trigger word "IDE Main Hall" has uppercase letters and spaces; use lowercase letters, '
        'digits and underscores, starting with a letter. Try "ide_main_hall".'
    )
    assert dialog.use_suggestion_button.isVisible()
    assert dialog.use_suggestion_button.text() == "Use ide_main_hall"
    assert not dialog.create_button.isEnabled()
    assert dialog.create_button.toolTip() == "Enter a valid trigger word."
    assert dialog.project_label.text() == "—"

    qtbot.mouseClick(dialog.use_suggestion_button, LEFT)
    assert dialog.trigger_edit.text() == "ide_main_hall"
    assert not dialog.use_suggestion_button.isVisible()
    assert dialog.create_button.isEnabled()
    assert dialog.project_label.text() == str(hall / "ide_main_hall.loraproj")

    retype(qtbot, dialog.trigger_edit, "3d room")
    assert dialog.trigger_message.text().startswith(
        'Trigger word "3d room" starts with a digit and has spaces;')
    assert dialog.use_suggestion_button.text() == "Use x3d_room"  # the digit is kept

    retype(qtbot, dialog.trigger_edit, "___")  # nothing usable left: no fix to offer
    assert "starts with an underscore" in dialog.trigger_message.text()
    assert not dialog.use_suggestion_button.isVisible()

    dialog.trigger_edit.clear()
    # An empty field is a hint, not an error in red (also before anything was typed).
    assert dialog.trigger_message.text() == TRIGGER_HINT
    assert dialog.trigger_message.styleSheet() == ""
    assert not dialog.create_button.isEnabled()


def test_the_first_view_shows_no_error(qtbot) -> None:
    dialog = open_new_project(qtbot, None)
    assert dialog.trigger_message.text() == TRIGGER_HINT
    assert dialog.trigger_message.styleSheet() == ""


def test_a_portrait_folder_suggests_the_person_profile_with_an_example(
        qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "Portraits Anna"
    make_photo_folder(folder, 2, size=(96, 64))
    dialog = open_new_project(qtbot, folder)
    wait_scanned(qtbot, dialog)
    assert dialog.profile_combo.currentText() == "Person"
    assert dialog.profile_note.text() == (
        "Person suggested: the folder name says so.\n"
        "Example caption: photo of portraits_anna standing, casual jeans and sweater, relaxed "
        "expression, soft window light from left, neutral grey background")
    # The user's own choice wins, and its example follows.
    dialog.profile_combo.setFocus()
    qtbot.keyClick(dialog.profile_combo, Qt.Key.Key_Home)
    assert dialog.profile_combo.currentText() == "Interior space"
    assert dialog.profile_note.text() == (
        "Example caption: photo of portraits_anna lecture hall, tiered seating, projection "
        "screen, overhead fluorescent lighting, teaching space with rows of desks")
    retype(qtbot, dialog.trigger_edit, "anna_headshot")
    assert dialog.profile_combo.currentText() == "Interior space"


def test_a_person_trigger_word_suggests_the_person_profile(qtbot, hall: Path) -> None:
    dialog = open_new_project(qtbot, hall)
    wait_scanned(qtbot, dialog)
    assert dialog.profile_combo.currentText() == "Interior space"
    retype(qtbot, dialog.trigger_edit, "selfie_me")
    assert dialog.profile_combo.currentText() == "Person"
    assert dialog.profile_note.text().startswith("Person suggested: the trigger word says so.")
    retype(qtbot, dialog.trigger_edit, "my_room")
    assert dialog.profile_combo.currentText() == "Interior space"


def test_invalid_files_are_listed_with_their_whole_reason(qtbot, hall: Path) -> None:
    dialog = open_new_project(qtbot, hall)
    dialog.resize(560, 700)
    wait_scanned(qtbot, dialog)
    rows = [dialog.invalid_list.item(i) for i in range(dialog.invalid_list.count())]
    assert [row.text().split(" — ")[0] for row in rows] == ["broken.jpg", "phone.heic"]
    assert all(row.toolTip() == row.text() for row in rows)
    assert dialog.invalid_list.wordWrap()
    # Each row is as tall as its wrapped text needs: nothing is cut off at the right.
    view_width = dialog.invalid_list.viewport().width()
    for row in rows:
        rect = dialog.invalid_list.visualItemRect(row)
        assert rect.width() <= view_width
        lines = rect.height() // dialog.invalid_list.fontMetrics().lineSpacing()
        needed = dialog.invalid_list.fontMetrics().horizontalAdvance(row.text()) / view_width
        assert lines >= int(needed)


def test_a_typed_trigger_word_is_not_replaced_by_the_next_folder(qtbot, hall: Path,
                                                                  tmp_path: Path) -> None:
    dialog = open_new_project(qtbot, hall)
    wait_scanned(qtbot, dialog)
    retype(qtbot, dialog.trigger_edit, "my_hall")
    other = tmp_path / "Other Room"
    make_photo_folder(other, 1, size=(64, 48))
    dialog.set_folder(other)
    wait_scanned(qtbot, dialog)
    assert dialog.trigger_edit.text() == "my_hall"


def test_create_is_enabled_only_when_every_rule_holds(qtbot, hall: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch, hall)
    dialog = open_new_project(qtbot, None)
    assert not dialog.create_button.isEnabled()
    assert dialog.create_button.toolTip() == "Choose the folder that holds the photos."
    qtbot.keyClicks(dialog.folder_edit, str(hall))
    qtbot.keyClick(dialog.folder_edit, Qt.Key.Key_Return)  # scans at once, no typing delay
    assert gate.entered.wait(10)
    qtbot.waitUntil(lambda: dialog.scan_label.text().startswith("Scanning…"))
    assert dialog.trigger_edit.text() == "ide_main_hall"
    assert not dialog.create_button.isEnabled()
    assert dialog.create_button.toolTip() == "Wait until the folder scan has finished."
    qtbot.keyClick(dialog.trigger_edit, Qt.Key.Key_Return)  # Enter must not create yet
    assert dialog.isVisible() and dialog.result() == QDialog.DialogCode.Rejected

    gate.released.set()
    qtbot.waitUntil(dialog.create_button.isEnabled, timeout=10_000)
    assert dialog.scan_label.text() == "3 images, 2 invalid"

    dialog.profile_combo.setFocus()
    qtbot.keyClick(dialog.profile_combo, Qt.Key.Key_End)  # Custom prompt is the last one
    assert dialog.profile_combo.currentText() == "Custom prompt"
    assert dialog.prompt_edit.isEnabled()
    assert not dialog.create_button.isEnabled()
    assert dialog.create_button.toolTip() == "Write the custom prompt."
    qtbot.keyClicks(dialog.prompt_edit, "Describe the room.")
    assert dialog.create_button.isEnabled()
    qtbot.keyClick(dialog.profile_combo, Qt.Key.Key_Home)
    assert dialog.profile_combo.currentText() == "Interior space"
    assert not dialog.prompt_edit.isEnabled()

    (hall / "taken.loraproj").write_bytes(b"")
    retype(qtbot, dialog.trigger_edit, "taken")
    assert not dialog.create_button.isEnabled()
    assert dialog.project_message.isVisible()
    assert dialog.project_message.text().startswith("taken.loraproj already exists")
    retype(qtbot, dialog.trigger_edit, "taken_two")
    assert dialog.create_button.isEnabled()
    assert not dialog.project_message.isVisible()


def test_a_folder_without_usable_photos_cannot_become_a_project(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"junk")
    (folder / "b.png").write_bytes(b"junk")
    dialog = open_new_project(qtbot, folder)
    wait_scanned(qtbot, dialog)
    assert dialog.scan_label.text() == "No usable photos in this folder (2 invalid)."
    assert not dialog.create_button.isEnabled()
    assert dialog.create_button.toolTip() == "No usable photos in this folder (2 invalid)."


def test_a_missing_folder_is_explained(qtbot, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    dialog = open_new_project(qtbot, missing)
    qtbot.waitUntil(lambda: "does not exist" in dialog.scan_label.text(), timeout=10_000)
    assert dialog.scan_label.text() == f'The folder "{missing}" does not exist.'
    assert not dialog.create_button.isEnabled()


def test_invalid_files_are_listed_with_their_reasons(qtbot, hall: Path) -> None:
    dialog = open_new_project(qtbot, hall)
    wait_scanned(qtbot, dialog)
    assert dialog.invalid_list.isVisible()
    rows = [dialog.invalid_list.item(i).text() for i in range(dialog.invalid_list.count())]
    assert len(rows) == 2
    assert rows[0].startswith("broken.jpg — ")
    assert "corrupt" in rows[0] or "not an image file" in rows[0]
    assert rows[1].startswith("phone.heic — HEIC photos are not supported: export them as JPEG")


def test_sidecar_captions_are_announced(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "room"
    make_photo_folder(folder, 2, size=(64, 48))
    (folder / "IMG_0001.txt").write_text("a room", encoding="utf-8")
    dialog = open_new_project(qtbot, folder)
    wait_scanned(qtbot, dialog)
    assert dialog.scan_label.text() == "2 images. 1 caption will be imported from .txt files."
    assert not dialog.invalid_list.isVisible()


def test_escape_closes_the_dialog_and_cancels_the_scan(qtbot, hall: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch, hall)
    dialog = open_new_project(qtbot, hall)
    assert gate.entered.wait(10)
    job = dialog.scan_job
    assert job is not None and job.is_running
    seen: list[str] = []
    job.finished.connect(lambda _files: seen.append("finished"))
    job.cancelled.connect(lambda: seen.append("cancelled"))
    qtbot.keyClick(dialog.trigger_edit, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert job.is_cancelled
    with qtbot.waitSignal(job.cancelled, timeout=10_000):
        gate.released.set()
    assert seen == ["cancelled"]
    assert len(gate.probed) == 1  # the walk stopped at the next file


def test_choosing_another_folder_cancels_the_previous_scan(qtbot, hall: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(monkeypatch, hall)
    dialog = open_new_project(qtbot, hall)
    assert gate.entered.wait(10)
    first = dialog.scan_job
    assert first is not None
    seen: list[str] = []
    first.cancelled.connect(lambda: seen.append("cancelled"))
    other = tmp_path / "Small Room"
    make_photo_folder(other, 2, size=(64, 48))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *args: str(other)))
    qtbot.mouseClick(dialog.browse_button, LEFT)
    wait_scanned(qtbot, dialog)
    assert dialog.scan_label.text() == "2 images"
    with qtbot.waitSignal(first.cancelled, timeout=10_000):
        gate.released.set()
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)
    assert seen == ["cancelled"]
    assert dialog.scan_label.text() == "2 images"  # the old folder's result never shows
    assert dialog.folder_edit.text() == str(other)
    assert dialog.spec().folder == other


def test_spec_holds_the_choices_and_creates_a_working_project(qtbot, hall: Path) -> None:
    dialog = open_new_project(qtbot, hall)
    wait_scanned(qtbot, dialog)
    dialog.profile_combo.setCurrentIndex(dialog.profile_combo.findData(Profile.CUSTOM.value))
    qtbot.keyClicks(dialog.prompt_edit, "  Describe the lighting only.  ")
    qtbot.mouseClick(dialog.create_button, LEFT)
    assert dialog.result() == QDialog.DialogCode.Accepted

    spec = dialog.spec()
    assert spec.folder == hall
    assert spec.project_path == hall / "ide_main_hall.loraproj"
    assert spec.trigger == "ide_main_hall"
    assert spec.profile is Profile.CUSTOM
    assert spec.custom_prompt == "Describe the lighting only."
    assert [f.rel_path for f in spec.files] == [
        "broken.jpg", "IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg", "phone.heic",
    ]
    with Project.create(spec.project_path, trigger=spec.trigger, profile=spec.profile.value,
                        custom_prompt=spec.custom_prompt) as project:
        project.add_scanned(spec.files)
        stats = project.stats()
        assert (stats.images, stats.invalid) == (3, 2)


def test_spec_has_no_custom_prompt_for_other_profiles(qtbot, hall: Path) -> None:
    dialog = open_new_project(qtbot, hall)
    wait_scanned(qtbot, dialog)
    dialog.profile_combo.setCurrentIndex(dialog.profile_combo.findData(Profile.CUSTOM.value))
    qtbot.keyClicks(dialog.prompt_edit, "ignored")
    dialog.profile_combo.setCurrentIndex(dialog.profile_combo.findData(Profile.PERSON.value))
    qtbot.mouseClick(dialog.create_button, LEFT)
    spec = dialog.spec()
    assert (spec.profile, spec.custom_prompt) == (Profile.PERSON, "")


# ------------------------------------------------------------------------------------ export


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """Five valid images (one in a sub-folder with a clashing name, one BMP) and an invalid one."""
    folder = tmp_path / "hall"
    make_photo_folder(folder, 3, size=(192, 128))
    make_photo(folder / "sub" / "IMG_0001.jpg", size=(192, 128), seed=9)
    make_photo(folder / "plan.bmp", size=(192, 128), seed=5)
    (folder / "broken.jpg").write_bytes(b"junk")
    proj = Project.create(folder / "hall.loraproj", trigger="hall")
    proj.add_scanned(scan_folder(folder))
    yield proj
    proj.close()


def caption_all(project: Project, *, skip: str = "") -> None:
    for rec in project.images():
        if rec.valid and rec.path != skip:
            project.edit_caption(rec.id, f"view of {rec.path}")


@pytest.fixture
def seams(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Replaces the message boxes; records their calls. ``ask_replace`` answers with
    ``calls["answer"][0]`` (True unless a test changes it)."""
    calls: dict[str, list] = {"ask": [], "message": [], "done": [], "answer": [True]}

    def ask(parent, path):
        calls["ask"].append(path)
        return calls["answer"][0]

    monkeypatch.setattr(dialogs, "ask_replace", ask)
    monkeypatch.setattr(dialogs, "show_message",
                        lambda parent, title, text, **kw: calls["message"].append((title, text)))
    monkeypatch.setattr(dialogs, "show_export_done",
                        lambda parent, result: calls["done"].append(result))
    return calls


def click_radio(qtbot, radio) -> None:
    """Click a radio button on its round indicator (its centre may be empty space)."""
    qtbot.mouseClick(radio, LEFT, pos=QPoint(6, radio.height() // 2))


def open_export(qtbot, project: Project) -> ExportDialog:
    dialog = ExportDialog(project)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_export_writes_a_real_replicate_zip(qtbot, project: Project, seams) -> None:
    caption_all(project)
    dialog = open_export(qtbot, project)
    zip_path = project.folder / "hall_training.zip"
    assert dialog.dest_edit.text() == str(zip_path)
    assert dialog.summary_label.text() == (
        "5 images will be exported, 5 with a caption. 1 invalid file is left out.")
    changes = [dialog.changes_list.item(i).text() for i in range(dialog.changes_list.count())]
    assert changes == [
        "sub/IMG_0001.jpg → IMG_0001_2.jpg (renamed: the name was taken)",
        "plan.bmp → plan.png (converted: the trainer does not read this file format)",
    ]
    assert not dialog.allow_uncaptioned.isVisible()
    assert dialog.export_button.isEnabled()

    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: bool(seams["done"]), timeout=10_000)
    assert dialog.result() == QDialog.DialogCode.Accepted
    result = dialog.export_result
    assert isinstance(result, ExportResult) and result.path == zip_path
    assert seams["done"] == [result] and seams["ask"] == [] and seams["message"] == []
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == [
            "IMG_0001.jpg", "IMG_0001.txt", "IMG_0001_2.jpg", "IMG_0001_2.txt", "IMG_0002.jpg",
            "IMG_0002.txt", "IMG_0003.jpg", "IMG_0003.txt", "metadata.txt", "plan.png",
            "plan.txt",
        ]
        assert archive.read("IMG_0001_2.txt").decode() == "photo of hall view of sub/IMG_0001.jpg"
        assert archive.read("plan.png")[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", [fmt.value for fmt in FORMATS])
def test_every_format_exports_from_the_dialog_and_again_over_its_own_export(
        qtbot, project: Project, seams, name: str) -> None:
    caption_all(project)
    for attempt in range(2):
        dialog = open_export(qtbot, project)
        dialog.choose_format(name)
        fmt = dialog.format
        target = dialog.target_path()
        assert target == default_output(project, fmt)
        assert dialog.export_button.isEnabled(), dialog.reason_label.text()
        qtbot.mouseClick(dialog.export_button, LEFT)
        qtbot.waitUntil(lambda n=attempt + 1: len(seams["done"]) == n, timeout=20_000)
        assert dialog.export_result.path == target and target.exists()
    # The second export replaced the project's own first one without asking.
    assert seams["ask"] == [] and seams["message"] == []


def test_uncaptioned_images_need_the_checkbox(qtbot, project: Project, seams) -> None:
    caption_all(project, skip="IMG_0002.jpg")
    dialog = open_export(qtbot, project)
    assert dialog.uncaptioned_label.text() == "1 image has no caption:"
    assert [dialog.uncaptioned_list.item(i).text()
            for i in range(dialog.uncaptioned_list.count())] == ["IMG_0002.jpg"]
    assert dialog.allow_uncaptioned.isVisible() and not dialog.allow_uncaptioned.isChecked()
    assert dialog.allow_uncaptioned.text() == (
        "Export images &without a caption (Replicate captions them itself)")
    assert not dialog.export_button.isEnabled()
    reason = ("1 image has no caption. Caption them first, or tick “Export images without a "
              "caption”.")
    assert dialog.reason_label.text() == reason
    assert dialog.export_button.toolTip() == reason

    qtbot.mouseClick(dialog.allow_uncaptioned, LEFT)
    assert dialog.export_button.isEnabled()
    assert not dialog.reason_label.isVisible()
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: bool(seams["done"]), timeout=10_000)
    with zipfile.ZipFile(dialog.export_result.path) as archive:
        names = set(archive.namelist())
    assert "IMG_0002.jpg" in names and "IMG_0002.txt" not in names
    assert seams["done"][0].uncaptioned == ["IMG_0002.jpg"]


def test_an_existing_file_is_kept_when_the_user_cancels(qtbot, project: Project, seams) -> None:
    caption_all(project)
    target = project.folder / "hall_training.zip"
    target.write_bytes(b"my old export")
    seams["answer"][0] = False
    dialog = open_export(qtbot, project)
    qtbot.mouseClick(dialog.export_button, LEFT)
    assert seams["ask"] == [target]
    assert dialog.job is None and dialog.isVisible()
    assert target.read_bytes() == b"my old export"
    assert dialog.export_result is None


def test_an_existing_file_is_replaced_when_the_user_agrees(qtbot, project: Project,
                                                           seams) -> None:
    caption_all(project)
    target = project.folder / "hall_training.zip"
    target.write_bytes(b"my old export")
    dialog = open_export(qtbot, project)
    qtbot.mouseClick(dialog.export_button, LEFT)
    assert seams["ask"] == [target]
    qtbot.waitUntil(lambda: bool(seams["done"]), timeout=10_000)
    with zipfile.ZipFile(target) as archive:
        assert "metadata.txt" in archive.namelist()


def test_missing_image_files_block_the_export(qtbot, project: Project, seams) -> None:
    caption_all(project)
    (project.folder / "IMG_0003.jpg").unlink()
    with pytest.raises(ExportError) as raised:
        plan_export(project, REPLICATE_FORMAT, ExportOptions(allow_uncaptioned=True))
    dialog = open_export(qtbot, project)
    assert dialog.error_label.isVisible()
    assert dialog.error_label.text() == str(raised.value)
    assert "IMG_0003.jpg" in dialog.error_label.text()
    assert not dialog.export_button.isEnabled()
    assert not dialog.summary_label.isVisible()


def test_format_change_updates_the_destination_unless_edited(qtbot, project: Project,
                                                             seams, tmp_path: Path) -> None:
    caption_all(project)
    dialog = open_export(qtbot, project)
    dialog.choose_format(ExportFormat.METADATA)
    assert dialog.format.name is ExportFormat.METADATA
    assert dialog.dest_edit.text() == str(project.folder / "metadata.txt")
    assert dialog.changes_list.count() == 0  # metadata.txt renames and converts no image

    own = tmp_path / "captions.txt"
    retype(qtbot, dialog.dest_edit, str(own))
    dialog.choose_format(ExportFormat.REPLICATE)
    assert dialog.dest_edit.text() == str(own)
    dialog.choose_format(ExportFormat.METADATA)
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: bool(seams["done"]), timeout=10_000)
    lines = own.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(line.startswith("photo of hall view of ") for line in lines)


def test_an_export_failure_is_shown_and_the_dialog_stays_usable(qtbot, project: Project,
                                                                seams, tmp_path: Path) -> None:
    caption_all(project)
    dialog = open_export(qtbot, project)
    target = tmp_path / "no such folder" / "out.zip"
    retype(qtbot, dialog.dest_edit, str(target))
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: bool(seams["message"]), timeout=10_000)
    assert seams["message"] == [(
        "Export Failed",
        f"Cannot write {target}: the folder {target.parent} does not exist.",
    )]
    assert dialog.isVisible() and dialog.export_button.isEnabled()
    assert dialog.export_result is None and seams["done"] == []


def test_export_done_message_opens_the_folder(qtbot, project: Project,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Path] = []
    monkeypatch.setattr(dialogs, "open_folder", lambda folder: opened.append(folder) or True)
    result = ExportResult(path=project.folder / "hall_training.zip",
                          format=ExportFormat.REPLICATE, images=5, captions=4,
                          uncaptioned=["a.jpg"], renames=[], conversions=[], bytes_written=10)
    texts: list[str] = []

    def click_open_folder() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        texts.append(box.text())
        button = next(b for b in box.buttons() if b.text() == "Open Folder")
        button.click()

    QTimer.singleShot(0, click_open_folder)
    dialogs.show_export_done(None, result)
    assert texts == [f"Exported 5 image(s) to {result.path}."]
    assert opened == [project.folder]


# ------------------------------------------------------------------------------------ API key


def test_api_key_is_stored_in_the_keychain(qtbot) -> None:
    dialog = ApiKeyDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    assert "Google Gemini" in dialog.intro_label.text()
    assert '<a href="https://aistudio.google.com/apikey">Create API key</a>' in (
        dialog.intro_label.text())
    assert not dialog.source_label.isVisible()  # no key yet
    assert not dialog.save_button.isEnabled()
    assert dialog.save_button.text() == "Save Key"

    qtbot.keyClicks(dialog.key_edit, "  my-secret-key ")
    assert dialog.key_edit.echoMode() == QLineEdit.EchoMode.Password
    qtbot.mouseClick(dialog.show_button, LEFT)
    assert dialog.key_edit.echoMode() == QLineEdit.EchoMode.Normal
    assert dialog.show_button.text() == "&Hide"
    qtbot.mouseClick(dialog.show_button, LEFT)
    assert dialog.key_edit.echoMode() == QLineEdit.EchoMode.Password

    qtbot.mouseClick(dialog.save_button, LEFT)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.saved_to == "keychain"
    assert keyring.get_password(KEYRING_SERVICE, KEYRING_USERNAME) == "my-secret-key"
    assert "GEMINI_API_KEY" not in os.environ
    assert find_api_key().source == "OS keychain"


def test_api_key_dialog_says_which_key_is_in_use(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_password(KEYRING_SERVICE, KEYRING_USERNAME, "stored")
    dialog = ApiKeyDialog()
    qtbot.addWidget(dialog)
    assert dialog.source_label.text() == "A key from the OS keychain is in use."
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    other = ApiKeyDialog()
    qtbot.addWidget(other)
    assert other.source_label.text() == (
        "A key from the GEMINI_API_KEY environment variable is in use. It takes precedence "
        "over a key saved here.")


def test_without_a_keychain_the_key_is_used_for_this_session_only(qtbot, no_keychain,
                                                                   tmp_path: Path) -> None:
    dialog = ApiKeyDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.keychain_label.isVisible()
    assert dialog.keychain_label.text().startswith(
        "The OS keychain is not available on this computer, so the key cannot be saved.")
    assert dialog.save_button.text() == "Use for This Session"
    qtbot.keyClicks(dialog.key_edit, "session-key")
    qtbot.keyClick(dialog.key_edit, Qt.Key.Key_Return)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.saved_to == "session"
    assert os.environ["GEMINI_API_KEY"] == "session-key"
    assert find_api_key().source == "GEMINI_API_KEY"
    assert MemoryKeyring.store == {}


# ------------------------------------------------------------------------------------ settings


def ok_button(dialog: SettingsDialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def set_spin(qtbot, spin, value: int) -> None:
    spin.selectAll()
    qtbot.keyClicks(spin, str(value))


def test_settings_are_written_and_the_project_gets_the_model(qtbot, project: Project,
                                                             app_settings: AppSettings,
                                                             tmp_path: Path) -> None:
    dialog = SettingsDialog(app_settings, project)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.model_combo.currentText() == DEFAULT_MODEL
    assert dialog.key_label.text() == "No API key is set yet."
    # Automatic (0) by default: each backend's own pace.
    assert (dialog.workers_spin.value(), dialog.rpm_spin.value(),
            dialog.max_side_spin.value()) == (0, 0, 1536)
    assert dialog.workers_spin.text() == "Automatic"

    retype(qtbot, dialog.model_combo.lineEdit(), "models/gemini-2.5-flash")
    set_spin(qtbot, dialog.workers_spin, 8)
    set_spin(qtbot, dialog.rpm_spin, 120)
    set_spin(qtbot, dialog.max_side_spin, 1024)
    qtbot.mouseClick(ok_button(dialog), LEFT)

    assert dialog.result() == QDialog.DialogCode.Accepted
    assert project.settings.model == "gemini-2.5-flash"
    reread = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert (reread.workers, reread.rpm, reread.max_side) == (8, 120, 1024)
    assert reread.default_model == DEFAULT_MODEL  # the project's model is the project's


def test_without_a_project_the_default_model_is_set(qtbot, app_settings: AppSettings) -> None:
    app_settings.default_model = "gemini-pro-latest"
    dialog = SettingsDialog(app_settings, None)
    qtbot.addWidget(dialog)
    assert dialog.model_combo.currentText() == "gemini-pro-latest"
    retype(qtbot, dialog.model_combo.lineEdit(), "")
    assert not ok_button(dialog).isEnabled()
    qtbot.keyClicks(dialog.model_combo.lineEdit(), "gemini-2.5-pro")
    assert ok_button(dialog).isEnabled()
    qtbot.mouseClick(ok_button(dialog), LEFT)
    assert app_settings.default_model == "gemini-2.5-pro"


def test_cancel_writes_nothing(qtbot, project: Project, app_settings: AppSettings) -> None:
    dialog = SettingsDialog(app_settings, project)
    qtbot.addWidget(dialog)
    dialog.show()
    retype(qtbot, dialog.model_combo.lineEdit(), "gemini-2.5-pro")
    set_spin(qtbot, dialog.workers_spin, 2)
    qtbot.keyClick(dialog.workers_spin, Qt.Key.Key_Escape)
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert project.settings.model == DEFAULT_MODEL
    assert app_settings.workers == 0  # still automatic


def test_refresh_fills_the_model_list_from_gemini(qtbot, project: Project,
                                                  app_settings: AppSettings,
                                                  gemini_server: FakeGeminiServer) -> None:
    dialog = SettingsDialog(app_settings, project)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.key_label.text() == (
        "A key from the GEMINI_API_KEY environment variable is in use.")
    qtbot.mouseClick(dialog.refresh_button, LEFT)
    assert not dialog.refresh_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.model_combo.count() > 1, timeout=20_000)
    assert [dialog.model_combo.itemText(i) for i in range(dialog.model_combo.count())] == [
        "gemini-flash-latest", "gemini-flash-lite-latest", "gemini-pro-latest",
        "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro",
    ]
    assert dialog.model_combo.currentText() == DEFAULT_MODEL
    assert dialog.model_message.text() == "6 models can write captions."
    assert dialog.refresh_button.isEnabled()
    assert [r.api_key for r in gemini_server.requests] == ["test-key"]

    dialog.model_combo.setCurrentIndex(3)
    qtbot.mouseClick(ok_button(dialog), LEFT)
    assert project.settings.model == "gemini-2.5-flash"


def test_a_failed_refresh_is_explained_and_the_field_stays_usable(
        qtbot, project: Project, app_settings: AppSettings, gemini_server: FakeGeminiServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "bad-key")
    dialog = SettingsDialog(app_settings, project)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.refresh_button, LEFT)
    qtbot.waitUntil(dialog.refresh_button.isEnabled, timeout=20_000)
    assert dialog.model_message.text().startswith("Gemini refused the API key")
    assert dialog.model_combo.count() == 1 and dialog.model_combo.isEditable()
    retype(qtbot, dialog.model_combo.lineEdit(), "gemini-2.5-pro")
    qtbot.mouseClick(ok_button(dialog), LEFT)
    assert project.settings.model == "gemini-2.5-pro"


def test_refresh_without_a_key_says_how_to_get_one(qtbot, app_settings: AppSettings) -> None:
    dialog = SettingsDialog(app_settings, None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.refresh_button, LEFT)
    assert dialog.model_job is None
    assert dialog.model_message.text().startswith("No Gemini API key found. Create one at Google")


def test_change_key_opens_the_api_key_dialog(qtbot, app_settings: AppSettings) -> None:
    dialog = SettingsDialog(app_settings, None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.change_key_button, LEFT)
    key_dialog = dialog.findChild(ApiKeyDialog)
    assert key_dialog is not None and key_dialog.isVisible()
    qtbot.keyClicks(key_dialog.key_edit, "new-key")
    qtbot.mouseClick(key_dialog.save_button, LEFT)
    assert dialog.key_label.text() == "A key from the OS keychain is in use."


def test_export_only_approved_images(qtbot, project: Project, seams) -> None:
    from loracap.core.schema import Review

    caption_all(project)
    approved = next(rec for rec in project.images() if rec.valid)
    project.set_review(approved.id, review=Review.APPROVED)
    dialog = open_export(qtbot, project)
    dialog.review_combo.setCurrentIndex(1)  # only approved
    assert dialog.summary_label.text().startswith("1 image will be exported")
    assert "1 invalid file is left out. 4 images are left out: not marked approved." in \
        dialog.summary_label.text()
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: bool(seams["done"]), timeout=10_000)
    with zipfile.ZipFile(dialog.export_result.path) as archive:
        images = [n for n in archive.namelist() if not n.endswith(".txt")]
    assert images == [approved.file_name]


def test_rejected_images_are_left_out_by_default_once_one_is_rejected(
        qtbot, project: Project, seams) -> None:
    from loracap.core.schema import Review

    caption_all(project)
    assert open_export(qtbot, project).review_filter is ReviewFilter.ALL  # nothing rejected
    rejected = next(rec for rec in project.images() if rec.valid)
    project.set_review(rejected.id, review=Review.REJECTED)
    dialog = open_export(qtbot, project)
    assert dialog.review_combo.currentText() == "All but rejected images"
    assert dialog.summary_label.text() == (
        "4 images will be exported, 4 with a caption. 1 invalid file is left out. 1 rejected "
        "image is left out (Images: All images exports them too).")
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: bool(seams["done"]), timeout=10_000)
    assert dialog.export_result.images == 4
    with zipfile.ZipFile(dialog.export_result.path) as archive:
        images = [n for n in archive.namelist() if not n.endswith(".txt")]
    assert len(images) == 4  # sub/IMG_0001.jpg keeps its own name once the other is left out


# ------------------------------------------------------------------------------------ layout


def assert_nothing_cut_off(dialog: QDialog) -> None:
    """The dialog is at least as large as its contents need, and every label shows its text:
    a wrapped label as tall as its lines, a one-line label as wide as its text (elided labels
    excepted: they show "…" and the whole text in a tooltip)."""
    from PyQt6.QtWidgets import QLabel

    from loracap.ui.widgets import ElidedLabel

    QApplication.processEvents()
    needed = dialog.minimumSizeHint()
    assert dialog.width() >= needed.width() and dialog.height() >= needed.height()
    for label in dialog.findChildren(QLabel):
        if not label.isVisible() or not label.text() or isinstance(label, ElidedLabel):
            continue
        if label.wordWrap():
            assert label.height() >= label.heightForWidth(label.width()), label.text()
        else:
            assert label.width() >= label.minimumSizeHint().width(), label.text()


def test_no_dialog_cuts_off_its_text(qtbot, project: Project, hall: Path,
                                     app_settings: AppSettings,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The longest key sentence: a key from an environment variable (it was cut off).
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    settings = SettingsDialog(app_settings, project)
    qtbot.addWidget(settings)
    settings.show()
    assert settings.key_label.text() == (
        "A key from the GEMINI_API_KEY environment variable is in use.")
    assert_nothing_cut_off(settings)
    key = ApiKeyDialog()
    qtbot.addWidget(key)
    key.show()
    assert_nothing_cut_off(key)
    new = open_new_project(qtbot, hall)
    wait_scanned(qtbot, new)
    assert_nothing_cut_off(new)
    assert_nothing_cut_off(open_export(qtbot, project))


def test_export_says_how_multi_person_captions_are_written(qtbot, project: Project,
                                                           seams) -> None:
    from loracap.core.prompts import Profile

    caption_all(project)
    project.update_settings(profile=Profile.MULTI_PERSON.value)
    dialog = open_export(qtbot, project)
    assert dialog.summary_label.text().endswith(
        'Captions with one line per person are joined into one line with "; " (this trainer '
        "reads one line).")
    hf = next(row for row in range(dialog.format_list.count())
              if dialog.format_list.item(row).text().startswith("Hugging Face"))
    dialog.format_list.setCurrentRow(hf)
    qtbot.waitUntil(lambda: dialog.summary_label.text().endswith(
        "Captions with one line per person are kept as lines."), timeout=5000)
