"""Images a project file names outside its folder, in the window: the grid's tooltip says so,
and the Export dialog exports them only after the user ticks its checkbox."""

from __future__ import annotations

import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QApplication

from loracap.core.project import Project
from loracap.core.scan import scan_folder
from loracap.ui import dialogs
from loracap.ui.export_dialog import ExportDialog
from loracap.ui.image_model import OUTSIDE_TEXT, ImageListModel
from loracap.ui.thumbnails import ThumbnailProvider
from tests.fakes.photos import make_photo, make_photo_folder

LEFT = Qt.MouseButton.LeftButton

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support propagateSizeHints\(\)$",
                                       extend=True)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """Two photos in the folder, and a row for ``../secret_notes.jpg`` (a real photo beside
    the folder), all captioned."""
    folder = tmp_path / "hall"
    make_photo_folder(folder, 2, size=(800, 600))
    make_photo(tmp_path / "secret_notes.jpg", size=(800, 600), seed=7)
    with Project.create(folder / "hall.loraproj", trigger="hall") as made:
        made.add_scanned(scan_folder(folder))
    conn = sqlite3.connect(folder / "hall.loraproj")
    conn.execute("INSERT INTO images (path, file_size, mtime, width, height, format, valid, "
                 "invalid_reason, added_at, review, note) VALUES ('../secret_notes.jpg', 1000, "
                 "0, 800, 600, 'JPEG', 1, '', '2024-01-01', 'unreviewed', '')")
    conn.commit()
    conn.close()
    opened = Project.open(folder / "hall.loraproj")
    for rec in opened.images():
        opened.edit_caption(rec.id, f"view of {rec.file_name}")
    yield opened
    opened.close()


def test_the_grid_tooltip_says_an_image_is_outside_the_folder(
        project: Project, tmp_path: Path, qapp: QApplication) -> None:
    provider = ThumbnailProvider(tmp_path / "cache", size=64)
    try:
        model = ImageListModel(provider)
        model.set_records(project.images(), project.settings, set())
        tips = {model.record(row).path: model.index(row, 0).data(Qt.ItemDataRole.ToolTipRole)
                for row in range(model.rowCount())}
    finally:
        provider.shutdown()
    assert "Outside the project folder" in OUTSIDE_TEXT
    assert OUTSIDE_TEXT in tips["../secret_notes.jpg"]
    assert OUTSIDE_TEXT not in tips["IMG_0001.jpg"]


def test_the_export_dialog_exports_outside_images_only_when_ticked(
        qtbot, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[object] = []
    monkeypatch.setattr(dialogs, "show_export_done", lambda parent, result: done.append(result))
    monkeypatch.setattr(dialogs, "show_message", lambda *args, **kwargs: done.append(args))
    dialog = ExportDialog(project)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.plan is None
    assert dialog.error_label.text().startswith("1 image(s) are outside the project folder")
    assert "../secret_notes.jpg" in dialog.error_label.text()
    assert dialog.allow_outside.isVisible() and not dialog.allow_outside.isChecked()
    assert dialog.allow_outside.text().replace("&", "") in dialog.error_label.text()
    assert not dialog.export_button.isEnabled()

    dialog.allow_outside.setChecked(True)
    assert dialog.plan is not None and dialog.export_button.isEnabled()
    assert "secret_notes.jpg" in [image.name for image in dialog.plan.images]
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    with zipfile.ZipFile(project.folder / "hall_training.zip") as archive:
        assert "secret_notes.jpg" in archive.namelist()


def test_the_checkbox_stays_hidden_without_outside_images(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    make_photo_folder(folder, 2, size=(800, 600))
    with Project.create(folder / "plain.loraproj", trigger="plain") as project:
        project.add_scanned(scan_folder(folder))
        for rec in project.images():
            project.edit_caption(rec.id, "a room")
        dialog = ExportDialog(project)
        qtbot.addWidget(dialog)
        dialog.show()
        assert dialog.plan is not None and not dialog.allow_outside.isVisible()
        assert dialog.export_button.isEnabled()
        dialog.close()
