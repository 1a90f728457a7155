"""The dataset check's one fix, in the real window: strip another trigger word's prefix from
imported captions (``prefix_other``), as one undo step, only when the user asks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox

from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.jobs import background
from loracap.ui.checks_panel import COL_FILE, COL_KIND, OUTDATED_TEXT, STRIP_TEXT
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow

SIDECARS = {
    "IMG_0001": "photo of other_name a hall, wooden tables",
    "IMG_0002": "Photo of  Other_Name, a lobby",
    "IMG_0003": "photo of ide_main_hall photo of TOK a stair",  # own prefix, then another
    "IMG_0004": "photo of a corridor",  # an ordinary caption
}
STRIPPED = {
    "IMG_0001.jpg": "a hall, wooden tables",
    "IMG_0002.jpg": "a lobby",
    "IMG_0003.jpg": "a stair",
    "IMG_0004.jpg": "photo of a corridor",
}
IMPORTED = {
    "IMG_0001.jpg": "photo of other_name a hall, wooden tables",
    "IMG_0002.jpg": "Photo of  Other_Name, a lobby",
    "IMG_0003.jpg": "photo of TOK a stair",
    "IMG_0004.jpg": "photo of a corridor",
}


@pytest.fixture(autouse=True)
def no_task_left_running(qtbot) -> Iterator[None]:
    yield
    qtbot.waitUntil(lambda: not background._LIVE, timeout=10_000)


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    folder = tmp_path / "ide_main_hall"
    make_photo_folder(folder, 4, size=(640, 640))
    for stem, text in SIDECARS.items():
        (folder / f"{stem}.txt").write_text(text, encoding="utf-8")
    path = folder / "ide_main_hall.loraproj"
    with Project.create(path, trigger="ide_main_hall") as project:
        project.add_scanned(scan_folder(folder))
    return path


@pytest.fixture
def window(qtbot, app_settings: AppSettings, tmp_path: Path,
           project_path: Path) -> Iterator[MainWindow]:
    win = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
    qtbot.addWidget(win)
    win.show()
    assert win.open_project(project_path)
    yield win
    win.close()


def bodies(window: MainWindow) -> dict[str, str]:
    assert window.project is not None
    return {rec.path: rec.caption.body for rec in window.project.images() if rec.caption}


def run_check(qtbot, window: MainWindow) -> None:
    window.check_dataset()
    qtbot.waitUntil(lambda: not window.checks_panel.is_running, timeout=20_000)


def answer_next_question(button_text: str, seen: list[str]) -> None:
    """Click ``button_text`` in the next message box (it is modal), recording its text."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        seen.append(" | ".join(b.text() for b in box.buttons()))
        next(b for b in box.buttons() if b.text() == button_text).click()

    QTimer.singleShot(0, click)


def select_finding(window: MainWindow, path: str) -> None:
    tree = window.checks_panel.list_view
    for row in range(tree.topLevelItemCount()):
        item = tree.topLevelItem(row)
        assert item is not None
        if item.text(COL_FILE) == path and item.text(COL_KIND) == "Foreign prefix":
            tree.setCurrentItem(item)
            return
    raise AssertionError(f"no foreign prefix finding for {path}")


def test_strip_other_prefix_from_all_then_undo(qtbot, window: MainWindow) -> None:
    assert bodies(window) == IMPORTED  # imported as they are: nothing stripped on its own
    panel = window.checks_panel
    assert not panel.strip_button.isVisibleTo(panel)
    run_check(qtbot, window)
    foreign = [f for f in panel.findings() if f.kind == "prefix_other"]
    assert [f.path for f in foreign] == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"]
    assert foreign[0].message == (
        'The caption starts with "photo of other_name": another trigger word\'s prefix; the '
        'export would read "photo of ide_main_hall photo of other_name …".')
    assert panel.strip_button.isVisibleTo(panel) and panel.strip_button.text() == STRIP_TEXT

    select_finding(window, "IMG_0002.jpg")
    seen: list[str] = []
    answer_next_question("Cancel", seen)
    qtbot.mouseClick(panel.strip_button, Qt.MouseButton.LeftButton)
    assert seen == ["3 captions start with another trigger word's prefix. Strip it?",
                    "Only This Image | All 3 Images | Cancel"]
    assert bodies(window) == IMPORTED  # Cancel changes nothing

    answer_next_question("All 3 Images", seen)
    qtbot.mouseClick(panel.strip_button, Qt.MouseButton.LeftButton)
    assert bodies(window) == STRIPPED
    label = "Strip another trigger word's prefix from 3 captions"
    assert window.undo_action.text() == f"&Undo {label}"
    assert window.statusBar().currentMessage() == f"{label}. Ctrl+Z takes it back."
    assert panel.status.text() == OUTDATED_TEXT
    assert window.editor.body.toPlainText() == STRIPPED[window.current_record().path]

    # One Ctrl+Z brings every caption back (pressed where the click left the focus).
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(panel.strip_button, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert bodies(window) == IMPORTED
    assert window.editor.body.toPlainText() == IMPORTED[window.current_record().path]

    run_check(qtbot, window)  # the check agrees
    assert len([f for f in panel.findings() if f.kind == "prefix_other"]) == 3


def test_strip_other_prefix_from_the_selected_image_only(qtbot, window: MainWindow) -> None:
    run_check(qtbot, window)
    select_finding(window, "IMG_0002.jpg")
    seen: list[str] = []
    answer_next_question("Only This Image", seen)
    qtbot.mouseClick(window.checks_panel.strip_button, Qt.MouseButton.LeftButton)
    assert bodies(window) == {**IMPORTED, "IMG_0002.jpg": "a lobby"}
    assert window.undo_action.text() == (
        "&Undo Strip another trigger word's prefix from 1 caption")


def test_context_menu_strips_the_finding_of_its_row(qtbot, window: MainWindow) -> None:
    run_check(qtbot, window)
    panel = window.checks_panel
    select_finding(window, "IMG_0003.jpg")
    actions = panel.context_actions(panel.list_view.currentItem())
    assert [a.text() for a in actions] == ["Strip Other Prefix from This Image",
                                           "Strip Other Prefix from All 3 Images"]
    actions[0].trigger()
    assert bodies(window) == {**IMPORTED, "IMG_0003.jpg": "a stair"}
    actions[1].trigger()
    assert bodies(window) == STRIPPED
    window.undo()
    assert bodies(window) == {**IMPORTED, "IMG_0003.jpg": "a stair"}
