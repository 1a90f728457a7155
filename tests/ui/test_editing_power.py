"""The window's editing tools, driven as a user drives them: tag chips, the Tags panel, batch
edits with undo that survives reopening, the History panel and the dataset check."""

from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QApplication, QFileDialog, QMessageBox, QToolButton

from loracap.core.project import Project, Provenance
from loracap.core.scan import scan_folder
from loracap.core.schema import Review
from loracap.ui.batch_dialog import BatchEditDialog, Operation
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.photos import make_photo, make_photo_folder

pytestmark = pytest.mark.slow

CAPTIONS = {
    "IMG_0001.jpg": "a hall, wooden tables, lamp",
    "IMG_0002.jpg": "a hall, wooden tables",
    "IMG_0003.jpg": "a kitchen, lamp",
    "IMG_0004.jpg": "A long corridor with a lamp at the end.",
}


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    folder = tmp_path / "cafe"
    make_photo_folder(folder, 4, size=(640, 640))
    path = folder / "cafe.loraproj"
    with Project.create(path, trigger="cafe") as project:
        project.add_scanned(scan_folder(folder))
        for rec in project.images():
            project.store_generated(rec.id, CAPTIONS[rec.file_name], backend="gemini",
                                    model="gemini-x", prompt="describe the room")
        # The setup is not the user's to undo.
        while project.undo() is not None:
            pass
    return path


@pytest.fixture
def window(qtbot, app_settings: AppSettings, tmp_path: Path, project_path: Path,
           monkeypatch: pytest.MonkeyPatch):
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning",
                        staticmethod(lambda _p, _t, text, *a, **k: shown.append(text)))
    made: list[MainWindow] = []

    def make() -> MainWindow:
        win = MainWindow(app_settings, ThumbnailProvider(tmp_path / "thumbs"))
        qtbot.addWidget(win)
        win.show()
        made.append(win)
        return win

    win = make()
    assert win.open_project(project_path)
    win.make_another = make  # type: ignore[attr-defined]
    win.shown_errors = shown  # type: ignore[attr-defined]
    yield win
    for each in made:
        if each.isVisible():
            each.close()


def ids(win: MainWindow) -> dict[str, int]:
    assert win.project is not None
    return {rec.file_name: rec.id for rec in win.project.images()}


def body(win: MainWindow, name: str) -> str:
    assert win.project is not None
    caption = win.project.image(ids(win)[name]).caption
    return caption.body if caption else ""


def shown_names(win: MainWindow) -> list[str]:
    return [win.proxy.index(row, 0).data() for row in range(win.proxy.rowCount())]


def test_chips_edit_the_current_caption_as_one_undo_step(qtbot, window: MainWindow) -> None:
    window.show_image(ids(window)["IMG_0001.jpg"])
    assert window.chips.chip_texts() == ["a hall", "wooden tables", "lamp"]
    chips = window.chips.chip_area.findChildren(QToolButton)
    remove = next(b for b in chips if b.toolTip() == "Remove wooden tables")
    qtbot.mouseClick(remove, Qt.MouseButton.LeftButton)
    assert body(window, "IMG_0001.jpg") == "a hall, lamp"
    assert window.editor.body.toPlainText() == "a hall, lamp"
    assert window.project.image(ids(window)["IMG_0001.jpg"]).caption.provenance \
        is Provenance.EDITED

    # Typing a tag with suggestions, Enter adds it.
    window.focus_tag_input()
    qtbot.keyClicks(window.chips.input, "oak chairs")
    qtbot.keyClick(window.chips.input, Qt.Key.Key_Return)
    assert body(window, "IMG_0001.jpg") == "a hall, lamp, oak chairs"
    assert window.chips.recent_tags()[0] == "oak chairs"
    assert window.settings.recent_tags[0] == "oak chairs"

    # Next image: one click on the recent tag adds it there too.
    window.show_image(ids(window)["IMG_0003.jpg"])
    recent = next(b for b in window.chips.recent_row.findChildren(QToolButton)
                  if b.text() == "oak chairs")
    assert not recent.isChecked()
    qtbot.mouseClick(recent, Qt.MouseButton.LeftButton)
    assert body(window, "IMG_0003.jpg") == "a kitchen, lamp, oak chairs"

    # Each chip action is one undo step, in order.
    window.undo()
    assert body(window, "IMG_0003.jpg") == "a kitchen, lamp"
    window.undo()
    window.undo()
    assert body(window, "IMG_0001.jpg") == "a hall, wooden tables, lamp"
    assert window.project.image(ids(window)["IMG_0001.jpg"]).caption.provenance \
        is Provenance.GENERATED


def test_tag_panel_counts_follow_edits_and_filter_the_grid(qtbot, window: MainWindow) -> None:
    panel = window.tag_panel
    assert panel.model.count("lamp") == 2  # IMG_0004's sentence is one tag of its own
    assert panel.model.count("wooden tables") == 2
    resets: list[bool] = []
    panel.model.modelAboutToBeReset.connect(lambda: resets.append(True))
    window.show_image(ids(window)["IMG_0002.jpg"])
    window.editor.apply_text("a hall, wooden tables, lamp, rug")
    qtbot.waitUntil(lambda: panel.model.count("lamp") == 3 and panel.model.count("rug") == 1)
    assert resets == []  # updated in place, not recounted

    row = next(r for r in range(panel.proxy.rowCount()) if panel.tag_at(r) == "wooden tables")
    panel.activate_row(row, False)
    assert window.filter_edit.text() == 'tag:"wooden tables"'
    assert shown_names(window) == ["IMG_0001.jpg", "IMG_0002.jpg"]
    panel.activate_row(row, True)
    assert shown_names(window) == ["IMG_0003.jpg", "IMG_0004.jpg"]


def test_batch_replace_is_one_step_and_undoes_after_reopening(qtbot, window: MainWindow,
                                                               project_path: Path) -> None:
    def drive() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, BatchEditDialog)
        dialog.set_scope(False)
        dialog.find_edit.setText("wooden")
        dialog.replace_edit.setText("oak")
        dialog.refresh_preview()
        assert dialog.apply_button.isEnabled()
        assert len(dialog.changes()) == 2
        dialog.apply_button.click()

    QTimer.singleShot(0, drive)
    window.batch_edit(Operation.REPLACE)
    assert body(window, "IMG_0001.jpg") == "a hall, oak tables, lamp"
    assert body(window, "IMG_0002.jpg") == "a hall, oak tables"
    qtbot.waitUntil(lambda: window.tag_panel.model.count("oak tables") == 2)
    assert window.tag_panel.model.count("wooden tables") == 0
    assert window.undo_action.text() == '&Undo Replace "wooden" with "oak" in 2 captions'

    window.close()
    again = window.make_another()  # type: ignore[attr-defined]
    assert again.open_project(project_path)
    assert again.undo_action.isEnabled()
    assert "wooden" in again.undo_action.text()
    again.undo()
    assert body(again, "IMG_0001.jpg") == "a hall, wooden tables, lamp"
    assert body(again, "IMG_0002.jpg") == "a hall, wooden tables"
    qtbot.waitUntil(lambda: again.tag_panel.model.count("wooden tables") == 2)
    assert again.redo_action.isEnabled()
    again.redo()
    assert body(again, "IMG_0002.jpg") == "a hall, oak tables"


def test_rename_from_the_tag_panel_covers_the_whole_project(qtbot, window: MainWindow) -> None:
    window.filter_edit.setText("kitchen")  # the panel's rename ignores the grid filter

    def drive() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, BatchEditDialog)
        assert dialog.rename_from_edit.text() == "lamp"
        dialog.rename_to_edit.setText("pendant lamp")
        dialog.refresh_preview()
        dialog.apply_button.click()

    QTimer.singleShot(0, drive)
    window.tag_panel.rename_requested.emit("lamp")
    assert body(window, "IMG_0001.jpg") == "a hall, wooden tables, pendant lamp"
    assert body(window, "IMG_0003.jpg") == "a kitchen, pendant lamp"
    # The sentence mentions "a lamp" but has no tag "lamp": untouched.
    assert body(window, "IMG_0004.jpg") == CAPTIONS["IMG_0004.jpg"]


def test_review_marks_undo_as_one_step(qtbot, window: MainWindow) -> None:
    window.view.selectAll()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_A)
    assert all(rec.review is Review.APPROVED for rec in window.project.images())
    assert window.review_status.text().startswith("4 of 4 reviewed")
    window.undo()
    assert all(rec.review is Review.UNREVIEWED for rec in window.project.images())
    assert window.review_status.text().startswith("0 of 4 reviewed")


def test_history_panel_restores_a_version_undoably(qtbot, window: MainWindow) -> None:
    image_id = ids(window)["IMG_0003.jpg"]
    window.show_image(image_id)
    window.editor.apply_text("a kitchen, lamp, tiles")
    window.editor.apply_text("my own words")
    history = window.project.history(image_id)
    assert window.history_panel.title.text().startswith("IMG_0003.jpg")
    generated = next(v for v in history if v.provenance is Provenance.GENERATED)
    window.history_panel.restore_requested.emit(generated.id)
    assert body(window, "IMG_0003.jpg") == "a kitchen, lamp"
    assert window.editor.body.toPlainText() == "a kitchen, lamp"
    window.undo()
    assert body(window, "IMG_0003.jpg") == "my own words"


def test_dataset_check_findings_jump_to_the_image(qtbot, window: MainWindow,
                                                  project_path: Path) -> None:
    window.editor.flush()
    window.show_image(ids(window)["IMG_0002.jpg"])
    window.editor.apply_text("a hall, wooden tables, lamp")  # now the same as IMG_0001
    window.filter_edit.setText("kitchen")
    window.check_dataset()
    assert window.checks_dock.isVisible()
    qtbot.waitUntil(lambda: not window.checks_panel.is_running, timeout=20_000)
    findings = window.checks_panel.findings()
    duplicate = [f for f in findings if f.kind == "duplicate"]
    assert {f.path for f in duplicate} == {"IMG_0001.jpg", "IMG_0002.jpg"}
    tree = window.checks_panel.list_view
    tree.setCurrentItem(tree.topLevelItem(0))
    assert window.checks_panel.detail.text().startswith("IMG_0001.jpg: Same caption as")
    assert not window.checks_panel.status.isVisibleTo(window.checks_panel)
    window.editor.apply_text("a hall, wooden tables, lamp, rug")
    assert "changed since this check" in window.checks_panel.status.text()
    window.checks_panel.image_requested.emit(duplicate[0].image_id)
    # The filter hid it, so the filter was cleared to show it.
    assert window.current_record().id == duplicate[0].image_id
    assert window.filter_edit.text() == ""


def test_tag_list_export_and_import(qtbot, window: MainWindow, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "tags.txt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    window.export_tag_list()
    lines = target.read_text(encoding="utf-8").splitlines()
    # By frequency, then by name.
    assert lines == ["a hall", "lamp", "wooden tables", CAPTIONS["IMG_0004.jpg"], "a kitchen"]

    danbooru = tmp_path / "danbooru.csv"
    danbooru.write_text('tag,category,count\nparquet_floor,0,1200\n"chandelier",0,800\n',
                        encoding="utf-8")
    window.import_tag_list(danbooru)
    assert window.settings.user_tags() == ["parquet_floor", "chandelier"]
    window.chips.completer.setCompletionPrefix("chand")
    assert window.chips.completer.currentCompletion() == "chandelier"

    broken = tmp_path / "empty.txt"
    broken.write_text("\n\n", encoding="utf-8")
    window.import_tag_list(broken)
    assert "holds no tags" in window.shown_errors[-1]  # type: ignore[attr-defined]
    assert window.settings.user_tags() == ["parquet_floor", "chandelier"]


def test_small_images_are_reported_by_the_check(qtbot, window: MainWindow) -> None:
    assert window.project is not None
    make_photo(window.project.folder / "tiny.jpg", size=(300, 200), seed=3)
    window.project.add_scanned(scan_folder(window.project.folder))
    window._reload_model()
    window.check_dataset()
    qtbot.waitUntil(lambda: not window.checks_panel.is_running, timeout=20_000)
    assert any(f.kind == "small" and f.path == "tiny.jpg"
               for f in window.checks_panel.findings())


def test_settings_change_the_tag_separator_and_load_a_tag_list(
        qtbot, window: MainWindow, tmp_path: Path) -> None:
    from loracap.ui.settings_dialog import SettingsDialog

    window.show_image(ids(window)["IMG_0001.jpg"])
    window.editor.apply_text("a hall; oak; lamp")
    dialog = SettingsDialog(window.settings, window.project, window)
    qtbot.addWidget(dialog)
    assert dialog.separator_edit.text() == ", "
    tags = tmp_path / "mine.txt"
    tags.write_text("brass\nvelvet\n", encoding="utf-8")
    dialog.load_tag_list(tags)
    assert dialog.tag_list_label.text() == "2 tags from mine.txt"
    dialog.separator_edit.setText("; ")
    dialog.accept()
    assert window.project.settings.tag_separator == "; "
    # What the window does after the dialog closes with OK:
    window.model.set_settings(window.project.settings)
    window.proxy.set_separator("; ")
    qtbot.waitUntil(lambda: window.tag_panel.model.count("oak") == 1)
    window.filter_edit.setText("tag:oak")
    assert shown_names(window) == ["IMG_0001.jpg"]


def test_shortcut_help_lists_the_new_tools(window: MainWindow) -> None:
    listed = dict(window.shortcut_list())
    assert listed["Find and Replace…"] == "Ctrl+H"
    assert listed["Check Dataset"] == "Ctrl+Shift+K"
    assert listed["Add Tag to This Image"] == "Ctrl+T"
    assert "Backspace" in listed["Remove the last tag (in the empty tag field)"]
