"""The New Project dialog says how many sidecar captions to be imported start with another
trigger word's prefix, for the trigger word typed; nothing is stripped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLineEdit

from loracap.jobs import background
from loracap.ui.new_project_dialog import NewProjectDialog
from tests.fakes.photos import make_photo_folder

SUMMARY = "4 images. 4 captions will be imported from .txt files."


@pytest.fixture(autouse=True)
def no_task_left_running(qtbot) -> Iterator[None]:
    yield
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)


@pytest.fixture
def hall(tmp_path: Path) -> Path:
    folder = tmp_path / "ide_main_hall"
    make_photo_folder(folder, 4, size=(96, 64))
    (folder / "IMG_0001.txt").write_text("photo of other_name a hall", encoding="utf-8")
    (folder / "IMG_0002.txt").write_text("Photo of  Other_Name, a lobby", encoding="utf-8")
    (folder / "IMG_0003.txt").write_text("photo of ide_main_hall photo of TOK a door",
                                         encoding="utf-8")
    (folder / "IMG_0004.txt").write_text("photo of a corridor", encoding="utf-8")
    return folder


def retype(qtbot, edit: QLineEdit, text: str) -> None:
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, text)


def test_scan_summary_counts_foreign_prefixes_for_the_trigger_typed(qtbot, hall: Path) -> None:
    dialog = NewProjectDialog(hall)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.scanned_files is not None, timeout=10_000)
    assert dialog.trigger_edit.text() == "ide_main_hall"
    assert dialog.scan_label.text() == (
        f"{SUMMARY} 3 imported captions start with another trigger word's prefix "
        "(photo of other_name, photo of TOK); Review > Check Dataset can strip it.")
    assert dialog.create_button.isEnabled()  # a note, not a blocker

    # The trigger word typed decides which prefix is foreign.
    retype(qtbot, dialog.trigger_edit, "other_name")
    assert dialog.scan_label.text() == (
        f"{SUMMARY} 1 imported caption starts with another trigger word's prefix "
        "(photo of ide_main_hall); Review > Check Dataset can strip it.")
    retype(qtbot, dialog.trigger_edit, "Other Name")  # not a trigger word: no note
    assert dialog.scan_label.text() == SUMMARY
    retype(qtbot, dialog.trigger_edit, "ide_main_hall")
    assert "3 imported captions start with" in dialog.scan_label.text()

    # Nothing is stripped: the files to import keep their text.
    sidecars = sorted(f.sidecar_caption for f in dialog.spec().files)
    assert "photo of other_name a hall" in sidecars
